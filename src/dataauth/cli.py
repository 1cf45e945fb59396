"""The ``dataauth`` command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dataauth.config import Settings

app = typer.Typer(
    help="dataauth: a data-authorization gateway (公共数据授权运营).", no_args_is_help=True
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="gateway database, keys and demo domain [env DATAAUTH_DATA_DIR]"
    ),
]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    data_dir: DataDir = None,
    demo: Annotated[bool, typer.Option("--demo", help="create and serve the demo domain")] = False,
    workers: Annotated[int, typer.Option(help="worker processes (one per core)", min=1)] = 1,
) -> None:
    """Start the gateway."""
    import uvicorn
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from dataauth.app import prepare

    settings = _settings(data_dir, host=host, port=port, demo=demo or None)
    with Progress(
        TextColumn("demo domain: {task.description}"), BarColumn(), MofNCompleteColumn()
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        prepare(settings, progress)
    # workers are separate processes: they read the same settings from the environment
    os.environ["DATAAUTH_DATA_DIR"] = str(settings.data_dir)
    os.environ["DATAAUTH_DEMO"] = "true" if settings.demo else "false"
    typer.echo(f"dataauth listening on http://{settings.host}:{settings.port}")
    uvicorn.run(
        "dataauth.app:create_worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
    )


@app.command()
def token(
    operator: Annotated[str, typer.Option("--operator", help="the operator id, e.g. demo-bank")],
    data_dir: DataDir = None,
    ttl: Annotated[int, typer.Option("--ttl", help="lifetime in seconds", min=1, max=86400)] = 3600,
    role: Annotated[list[str] | None, typer.Option("--role", help="a role claim")] = None,
) -> None:
    """Print a token from the development issuer (development and demo only)."""
    from dataauth.identity.dev_issuer import issue_token
    from dataauth.keyring import Keyring

    settings = _settings(data_dir)
    if not settings.development_issuer:
        typer.echo(
            "a real issuer is configured (DATAAUTH_JWKS_FILE or DATAAUTH_JWKS_URL): "
            "the development issuer is not trusted, ask your issuer for a token",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(
        issue_token(
            Keyring(settings.keys_dir),
            subject=operator,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl_seconds=ttl,
            roles=tuple(role or ("operator",)),
        )
    )


if __name__ == "__main__":
    app()
