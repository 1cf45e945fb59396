"""``dataauth catalog``: the catalog document (分类分级), checked offline or published."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dataauth.cli.common import (
    DEFAULT_URL,
    DataDir,
    GatewayUrl,
    Token,
    described,
    echo_json,
    fail,
    gateway,
    listed,
)

app = typer.Typer(
    help="The catalog (分类分级): datasets, classified columns, products, joins, licences.",
    no_args_is_help=True,
)

CatalogFile = Annotated[Path, typer.Argument(help="a catalog document (JSON)")]


def _read_catalog(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")


@app.command("check")
def catalog_check(
    document: CatalogFile,
    domain_url: Annotated[
        str | None, typer.Option(help="the department's database, to check tables against")
    ] = None,
) -> None:
    """Check a catalog document offline, and against the department's database if given."""
    from dataauth.admin.catalog import check
    from dataauth.catalog.publish import digest
    from dataauth.domain.database import open_domain
    from dataauth.errors import Problem

    domain = open_domain(domain_url) if domain_url else None
    try:
        checked = check(_read_catalog(document), None, domain)
    except Problem as problem:
        errors = problem.extensions.get("errors", [])
        fail(f"FAILED ({problem.code}): {problem.detail}{listed(errors, problem.detail)}")
    finally:
        if domain is not None:
            domain.dispose()
    counts = ", ".join(f"{n} {section}" for section, n in checked.counts().items())
    against = " and the database" if domain_url else ""
    typer.echo(f"ok: {counts}; checked on its own{against}; {digest(checked)}")


@app.command("apply")
def catalog_apply(
    document: CatalogFile,
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Publish a catalog document on the gateway (a department's token; audited)."""
    content = _read_catalog(document)
    with gateway(url, token, data_dir) as client:
        shown = client.apply_catalog(content)
    counts = ", ".join(f"{n} {section}" for section, n in shown["counts"].items())
    typer.echo(f"published {shown['digest']} ({counts}); audit entry {shown['audit']['entry']}")
    for warning in shown["warnings"]:
        typer.echo(f"warning: {described(warning)}", err=True)


@app.command("show")
def catalog_show(
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Print the gateway's catalog as a document (a department's token)."""
    with gateway(url, token, data_dir) as client:
        echo_json(client.catalog())
