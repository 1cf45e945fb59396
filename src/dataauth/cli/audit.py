"""``dataauth audit``: the audit log, offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dataauth.cli.common import DataDir, fail, gateway_database, load_settings, progress

if TYPE_CHECKING:
    from dataauth.audit.witnesses import WitnessPolicy

Witnesses = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        help="a witness's cosignature key (vkey, type 0x04) the check trusts; repeat for more",
    ),
]
WitnessesNeeded = Annotated[
    int | None,
    typer.Option(help="how many of the --witness keys must have cosigned (default: all)", min=0),
]


def witness_policy(witnesses: list[str] | None, needed: int | None) -> WitnessPolicy | None:
    """The policy the options give, or None where no --witness is given."""
    from dataauth.audit.witnesses import PolicyError, WitnessPolicy

    if not witnesses:
        if needed:
            fail("FAILED: --witnesses-needed needs the --witness keys it counts")
        return None
    try:
        return WitnessPolicy.of(witnesses, needed)
    except PolicyError as exc:
        fail(f"FAILED: {exc}")


def witnessed(names: list[str], policy: WitnessPolicy | None) -> None:
    if policy is not None:
        typer.echo(
            f"witnessed by {len(names)} of {len(policy.witnesses)} trusted witnesses "
            f"({policy.needed} needed): {', '.join(names) or 'none'}"
        )


app = typer.Typer(
    help="The audit log, offline: export it, verify it, replay its decisions.",
    no_args_is_help=True,
)


@app.command("export")
def audit_export(
    directory: Annotated[Path, typer.Argument(help="where to write the export")],
    data_dir: DataDir = None,
    start: Annotated[int, typer.Option("--from", help="first entry (rounded to a head)")] = 0,
    end: Annotated[int | None, typer.Option("--to", help="end (default: latest head)")] = None,
) -> None:
    """Export entries, signed tree heads, keys and policy bundles for offline checks."""
    from dataauth.audit.export import ExportError, export_log
    from dataauth.store.engine import gateway_engine

    database = gateway_database(load_settings(data_dir))
    with progress("exporting") as advance:
        try:
            manifest = export_log(gateway_engine(database), directory, start, end, advance)
        except ExportError as exc:
            fail(f"cannot export: {exc}")
    typer.echo(
        f"exported entries [{manifest['from']}, {manifest['to']}) with {manifest['heads']} "
        f"tree heads and {len(manifest['bundles'])} policy bundles to {directory}"
    )
    if manifest["missing_bundles"]:
        typer.echo(f"warning: bundles not on record: {manifest['missing_bundles']}", err=True)


@app.command("verify")
def audit_verify(
    directory: Annotated[Path, typer.Argument(help="an export")],
    witness: Witnesses = None,
    witnesses_needed: WitnessesNeeded = None,
) -> None:
    """Check an export offline: signatures, the head chain, every root, every entry; with
    --witness, that its last head is cosigned by the witnesses the policy needs."""
    from dataauth.audit.verify import Failed, verify_export

    policy = witness_policy(witness, witnesses_needed)
    with progress("verifying") as advance:
        try:
            report = verify_export(directory, advance, policy)
        except Failed as exc:
            fail(f"FAILED: {exc}")
    typer.echo(
        f"verified: entries [{report.first}, {report.first + report.entries}), "
        f"{report.heads} signed tree heads, {report.keys} keys, {report.bundles} policy bundles"
    )
    typer.echo(f"latest root {report.last_head['root']} at size {report.last_head['size']}")
    witnessed(report.witnessed, policy)


@app.command("replay")
def audit_replay(
    directory: Annotated[Path, typer.Argument(help="an export")],
    engine: Annotated[
        str | None, typer.Option(help="regorus or embedded (regopy); default the gateway's")
    ] = None,
) -> None:
    """Re-decide every recorded decision against the bundle that was in force."""
    from dataauth.audit.replay import replay_export
    from dataauth.audit.verify import Failed
    from dataauth.config import POLICY_ENGINE
    from dataauth.policy.engines import IN_PROCESS

    if engine is not None and engine not in IN_PROCESS:
        fail(f"FAILED: no in-process engine {engine!r}; one of {sorted(IN_PROCESS)}")
    try:
        report = replay_export(directory, engine_name=engine or POLICY_ENGINE)
    except (Failed, FileNotFoundError, KeyError, ValueError) as exc:
        fail(f"FAILED: {exc}")
    decided = report.entries - report.administrative - report.rejected
    typer.echo(
        f"replayed {decided} decisions: {report.matched} matched, "
        f"{len(report.mismatches)} differ, {report.not_replayable} were engine failures"
        + (
            f" ({report.administrative} administrative entries: policy publications, "
            "catalog publications, model submissions and reviews, HE registrations)"
            if report.administrative
            else ""
        )
        + (f" ({report.rejected} requests rejected before a decision)" if report.rejected else "")
    )
    for mismatch in report.mismatches[:20]:
        typer.echo(
            f"  entry {mismatch.index}: recorded {mismatch.recorded}, replayed {mismatch.replayed}"
        )
    if report.mismatches:
        raise typer.Exit(1)


@app.command("verify-receipt")
def audit_verify_receipt(
    receipt: Annotated[Path, typer.Argument(help="GET /v1/audit/proof/inclusion, saved")],
    keys: Annotated[Path, typer.Option(help="GET /v1/audit/keys or an export's keys.json")],
    witness: Witnesses = None,
    witnesses_needed: WitnessesNeeded = None,
) -> None:
    """Check one receipt against its signed tree head and the log's public keys; with
    --witness, that its head is cosigned by the witnesses the policy needs."""
    import json

    from dataauth.audit.verify import Failed, load_keys, verify_receipt

    policy = witness_policy(witness, witnesses_needed)
    try:
        names = verify_receipt(
            json.loads(receipt.read_text()), load_keys(json.loads(keys.read_text())), policy
        )
    except (Failed, ValueError) as exc:
        fail(f"FAILED: {exc}")
    typer.echo("the receipt verifies: the entry is in the signed log")
    witnessed(names, policy)
