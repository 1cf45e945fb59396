"""The ``dataauth`` command line: one module per command group, each on the SDK where it
talks to a running gateway."""

from __future__ import annotations

import typer

from dataauth.cli import audit, catalog, consent, db, he, models, policy, serve, witness

app = typer.Typer(
    help="dataauth: a data-authorization gateway (公共数据授权运营).", no_args_is_help=True
)


@app.callback()
def _private_files() -> None:
    """Whatever a command writes (databases, keys, exports) is the user's alone."""
    from dataauth.files import private_umask

    private_umask()


for command in (serve.serve, serve.health, serve.token):
    app.command()(command)
for name, group in (
    ("audit", audit.app),
    ("policy", policy.app),
    ("models", models.app),
    ("consent", consent.app),
    ("catalog", catalog.app),
    ("db", db.app),
    ("he", he.app),
    ("witness", witness.app),
):
    app.add_typer(group, name=name)
