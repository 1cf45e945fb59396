"""``dataauth policy``: check a bundle, its digest, what-if on past traffic, publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dataauth.cli.common import (
    DEFAULT_URL,
    DataDir,
    fail,
    gateway,
    gateway_database,
    load_settings,
)

app = typer.Typer(
    help="Policy bundles: check, digest, what-if on past traffic, publish.",
    no_args_is_help=True,
)

BundleDir = Annotated[Path, typer.Argument(help="the bundle folder")]


def _load(directory: Path) -> Any:
    from dataauth.policy.bundle import BundleError, load_bundle

    try:
        return load_bundle(directory)
    except BundleError as exc:
        fail(f"FAILED: {exc}")


@app.command("digest")
def policy_digest(directory: BundleDir = Path("policies")) -> None:
    """Print the bundle's identity: SHA-256 over its canonical content."""
    typer.echo(_load(directory).digest)


@app.command("check")
def policy_check(directory: BundleDir = Path("policies")) -> None:
    """Compile the bundle and run its decision tables (tests/*.json) on every in-process
    engine: a bundle must decide alike whichever one a gateway is set to."""
    from dataauth.policy.bundle import BundleError
    from dataauth.policy.cases import check, load_cases
    from dataauth.policy.engines import IN_PROCESS

    bundle = _load(directory)
    cases = load_cases(directory)
    failures = 0
    for name, make in IN_PROCESS.items():
        try:
            engine = make(bundle)
        except BundleError as exc:
            fail(f"FAILED ({name}): {exc}")
        for case in cases:
            problem = check(engine, case)
            if problem:
                failures += 1
                typer.echo(f"FAIL {case.source}: {case.name} ({name}): {problem}")
    runs = len(cases) * len(IN_PROCESS)
    typer.echo(
        f"{bundle.digest}: {runs - failures} passed, {failures} failed "
        f"({len(cases)} cases on {', '.join(IN_PROCESS)})"
    )
    if failures or not cases:
        raise typer.Exit(1)


@app.command("whatif")
def policy_whatif(
    candidate: BundleDir,
    data_dir: DataDir = None,
    since: Annotated[str | None, typer.Option(help="from this time (ISO 8601, UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="before this time (ISO 8601, UTC)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """How the recorded decisions would change under a candidate bundle."""
    import json

    from dataauth.policy.whatif import whatif
    from dataauth.store.engine import gateway_engine

    settings = load_settings(data_dir)
    database = gateway_engine(gateway_database(settings))
    report = whatif(database, _load(candidate), since, until, engine_name=settings.policy_engine)
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(
        f"candidate {report['candidate']}: {report['changed']} of {report['decisions']} "
        "recorded decisions would change"
    )
    for group in report["groups"]:
        typer.echo(
            f"  {group['operator']:<16} {group['product']:<28} {group['decisions']:>6} decisions"
            f"  allow→deny {group['allow_to_deny']:>5}  deny→allow {group['deny_to_allow']:>5}"
        )
        for example in group["examples"]:
            was = "allow" if example["was"] else "deny"
            now = "allow" if example["would_be"] else "deny"
            why = "; ".join(example["reasons"]) or "no denial"
            typer.echo(f"      entry {example['index']} ({example['time']}): {was}→{now}: {why}")


@app.command("publish")
def policy_publish(
    directory: BundleDir = Path("policies"),
    url: Annotated[str, typer.Option(help="the gateway")] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option(help="a department's token")] = None,
    data_dir: DataDir = None,
) -> None:
    """Check the bundle, then put it in force on the gateway (audited)."""
    policy_check(directory)
    bundle = _load(directory)
    with gateway(url, token, data_dir, brief=True) as client:
        body = client.publish_policy(bundle.content())
    typer.echo(
        f"published {body['digest']} (was {body['previous'] or 'none'}), "
        f"audit entry {body['audit']['entry']}"
    )
