"""``dataauth witness``: run a C2SP tlog-witness that cosigns the logs it follows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataauth.cli.common import fail

app = typer.Typer(
    help="A witness: cosigns a log's checkpoints once it has checked they extend the last.",
    no_args_is_help=True,
)

Directory = Annotated[
    Path, typer.Option("--dir", help="the witness's key, settings and state", show_default=True)
]
Name = Annotated[
    str | None,
    typer.Option(help="the witness's key name, e.g. witness.example/w1 (kept on first use)"),
]


@app.command("key")
def witness_key(directory: Directory = Path(".dataauth-witness"), name: Name = None) -> None:
    """Print the witness's verifier key (vkey), making the key the first time."""
    from dataauth.witness.app import WitnessSetupError, witness_signer

    try:
        typer.echo(witness_signer(directory, name).verifier.vkey())
    except (WitnessSetupError, ValueError) as exc:
        fail(f"FAILED: {exc}")


@app.command("serve")
def witness_serve(
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="a log's note key (vkey) named by its origin, e.g. the gateway's "
            "/checkpoint key; repeat for more logs (kept; the kept ones serve if none)",
        ),
    ] = None,
    directory: Directory = Path(".dataauth-witness"),
    name: Name = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8081,
) -> None:
    """Serve POST /add-checkpoint (c2sp.org/tlog-witness), one process: its state is one
    file, replaced atomically, under a lock."""
    import uvicorn

    from dataauth.witness.app import WitnessSetupError, create_app, load_witness

    try:
        witness = load_witness(directory, name, log or [])
    except (WitnessSetupError, ValueError) as exc:
        fail(f"FAILED: {exc}")
    typer.echo(f"witness {witness.signer.verifier.vkey()}")
    typer.echo(f"following {', '.join(sorted(witness.logs))}")
    typer.echo(f"listening on http://{host}:{port}")
    uvicorn.run(create_app(witness), host=host, port=port, log_level="warning", access_log=False)
