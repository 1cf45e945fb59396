"""``dataauth he``: a regulator's check of an encrypted-scoring model's filing (算法备案)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataauth.cli.common import DEFAULT_URL, DataDir, echo_json, fail, gateway

app = typer.Typer(
    help="Encrypted scoring (密态计算): a regulator's check of a model filing (算法备案).",
    no_args_is_help=True,
)


@app.command("filing")
def he_filing(
    model: Annotated[str, typer.Argument(help="the model's id (sha256:…)")],
    url: Annotated[str, typer.Option("--url", envvar="DATAAUTH_URL", help="the gateway")] = (
        DEFAULT_URL
    ),
    token: Annotated[str | None, typer.Option(help="a regulator's token")] = None,
    data_dir: DataDir = None,
) -> None:
    """Print a filing as the gateway holds it (JSON): with a regulator's token."""
    with gateway(url, token, data_dir, subject="regulator", roles=("regulator",)) as client:
        echo_json(client.filing(model))


@app.command("check-filing")
def he_check_filing(
    filing: Annotated[Path, typer.Argument(help="the filing (JSON, from `dataauth he filing`)")],
    reveal: Annotated[Path, typer.Argument(help="the operator's reveal bundle (JSON)")],
) -> None:
    """Check offline that the filed ciphertexts decrypt, with the revealed secret key, to
    the revealed weights in every slot, that those give the filed commitment and lie
    within the declared bounds. Exit 1 on any problem."""
    import json

    from dataauth.sdk.he import check_filing

    try:
        filed, revealed = json.loads(filing.read_text()), json.loads(reveal.read_text())
        problems = check_filing(filed, revealed)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"FAILED: cannot read the filing or the bundle: {exc!r}")
    if problems:
        for found in problems:
            typer.echo(f"{found['code']}: {found['detail']}")
        fail(f"FAILED: {len(problems)} problem(s) in filing {filed.get('id')}")
    typer.echo(
        f"OK: filing {filed['id']} of {filed['operator']}: {len(filed['weights'])} weights "
        "and the bias decrypt to the revealed model, which gives the commitment and keeps "
        "within the declared bounds"
    )
