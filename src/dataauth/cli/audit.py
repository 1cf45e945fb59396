"""``dataauth audit``: the audit log, offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataauth.cli.common import (
    DataDir,
    fail,
    gateway,
    gateway_database,
    load_settings,
    progress,
    refuse,
)

if TYPE_CHECKING:
    from dataauth.audit.note import Verifier
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
    directory: Annotated[Path | None, typer.Argument(help="an export")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="a gateway: fetch its log as tlog tiles")
    ] = None,
    vkey: Annotated[
        list[str] | None,
        typer.Option(help="the log's note key (`dataauth audit vkey`); needed with --url"),
    ] = None,
    token: Annotated[str | None, typer.Option(help="a regulator's token (for --url)")] = None,
    data_dir: DataDir = None,
    witness: Witnesses = None,
    witnesses_needed: WitnessesNeeded = None,
    tsa_roots: Annotated[
        Path | None, typer.Option(help="the TSA's root certificates (PEM): check time-stamps")
    ] = None,
    max_stamp_gap: Annotated[
        float | None,
        typer.Option(help="fail where a head went unstamped this many seconds (--tsa-roots)"),
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(help="with --url: a checkpoint verified before; the log must extend it"),
    ] = None,
    keep: Annotated[
        Path | None,
        typer.Option(help="with --url: write the checkpoint verified here, for a later --since"),
    ] = None,
) -> None:
    """Check an export offline, or a gateway's log over HTTP as C2SP tlog tiles:
    signatures, the head chain, checkpoints, time-stamps, every root, every entry; with
    --witness, that the last head is cosigned by the witnesses the policy needs."""
    from dataauth.audit.timestamps import TimestampError, load_roots
    from dataauth.audit.verify import Failed, load_vkeys, verify_export

    if (directory is None) == (url is None):
        refuse("give an export's directory or --url, one of them")
    try:
        pinned = load_vkeys(vkey) if vkey else None
    except Failed as exc:
        refuse(f"--vkey: {exc}")
    policy = witness_policy(witness, witnesses_needed)
    if url is not None:
        if pinned is None:
            refuse("--url needs --vkey: the log's note key, as its operator published it")
        earlier = _read_since(since)
        _verify_url(url, pinned, token, data_dir, earlier, policy, keep)
        return
    if since is not None or keep is not None:
        refuse("--since and --keep are for --url: an export carries every head itself")
    if max_stamp_gap is not None and tsa_roots is None:
        fail("FAILED: --max-stamp-gap checks time-stamps: give --tsa-roots too")
    try:
        roots = load_roots(tsa_roots) if tsa_roots is not None else None
    except TimestampError as exc:
        fail(f"FAILED: --tsa-roots: {exc}")
    with progress("verifying") as advance:
        try:
            report = verify_export(directory, advance, roots, max_stamp_gap, pinned, policy)
        except Failed as exc:
            fail(f"FAILED: {exc}")
    checkpoints = f"{report.checkpoints} checkpoints of " if report.checkpoints else ""
    typer.echo(
        f"verified: entries [{report.first}, {report.first + report.entries}), {checkpoints}"
        f"{report.heads} signed tree heads, {report.keys} keys, {report.bundles} policy bundles"
    )
    typer.echo(f"latest root {report.last_head['root']} at size {report.last_head['size']}")
    for change in report.key_changes:
        typer.echo(
            f"entry {change['entry']}: signing key {change['from_key_id'][:16]}… "
            + (
                "rotated (signed by the old key)"
                if change["reason"] == "rotation"
                else "REVOKED (signed by the new key only: trust it as you trust keys.json)"
            )
            + f" to {change['to_key_id'][:16]}… ({change['to_algorithm']})"
        )
    witnessed(report.witnessed, policy)
    stamps = report.stamps
    if stamps.newest is not None or stamps.checked:
        typer.echo(stamp_line(stamps))


def stamp_line(stamps: Any) -> str:
    """What verify says of the time-stamps: checked or not, the newest and its age."""
    from dataauth.canonical import rfc3339, utc_now

    said = (
        f"{stamps.stamps} time-stamps verified against the TSA roots"
        if stamps.checked
        else f"{stamps.stamps} time-stamps, not checked (give --tsa-roots)"
    )
    newest = stamps.newest
    age = (utc_now() - newest.gen_time).total_seconds()
    return (
        f"{said}; the newest covers size {newest.size}, stamped {rfc3339(newest.gen_time)} "
        f"({age:.0f} s ago), {stamps.unstamped} later heads unstamped"
    )


def _read_since(since: Path | None) -> bytes | None:
    if since is None:
        return None
    try:
        return since.read_bytes()
    except OSError as exc:
        refuse(f"--since: cannot read {since}: {exc.strerror}")


def _verify_url(
    url: str,
    vkeys: list[Verifier],
    token: str | None,
    data_dir: Path | None,
    since: bytes | None,
    policy: WitnessPolicy | None,
    keep: Path | None,
) -> None:
    from dataauth.audit.tileverify import Unavailable, verify_tiles
    from dataauth.audit.verify import Failed
    from dataauth.sdk.client import GatewayError

    with gateway(url, token, data_dir, subject="regulator", roles=("regulator",)) as client:

        def fetch(path: str) -> bytes:
            try:
                return client.fetch(path)
            except GatewayError as exc:
                raise Unavailable(path, exc.code, str(exc)) from None

        with progress("fetching tiles") as advance:
            try:
                report = verify_tiles(fetch, vkeys, advance, since, policy)
            except Failed as exc:
                fail(f"FAILED: {exc}")
    typer.echo(
        f"verified: {report.size} entries of {report.origin} as tiles: {report.bundles} "
        f"entry bundles, {report.tiles} tiles, the checkpoint's signature and root"
    )
    typer.echo(f"root {report.root} at size {report.size}")
    if report.extends is not None:
        typer.echo(f"it extends the earlier checkpoint of size {report.extends}")
    witnessed(report.witnessed, policy)
    if keep is not None:
        try:
            keep.write_bytes(report.note)
        except OSError as exc:
            fail(f"--keep: cannot write {keep}: {exc.strerror}")


@app.command("vkey")
def audit_vkey(data_dir: DataDir = None) -> None:
    """Print the log's note keys (vkeys), for a tlog client, witness or `audit verify --url`."""
    from dataauth.audit.ledger import Ledger
    from dataauth.store.engine import gateway_engine

    database = gateway_database(load_settings(data_dir))
    vkeys = Ledger(gateway_engine(database)).vkeys()
    if not vkeys:
        fail("no checkpoint is signed yet: run the gateway, which signs them")
    for line in vkeys:
        typer.echo(line)


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
            "catalog publications, model submissions and reviews, HE registrations, "
            "signing key changes)"
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

    from dataauth.audit.verify import Failed, load_keys, retired_keys, verify_receipt

    policy = witness_policy(witness, witnesses_needed)
    try:
        listed = json.loads(keys.read_text())
        names = verify_receipt(
            json.loads(receipt.read_text()), load_keys(listed), policy, retired_keys(listed)
        )
    except (Failed, ValueError) as exc:
        fail(f"FAILED: {exc}")
    typer.echo("the receipt verifies: the entry is in the signed log")
    witnessed(names, policy)


@app.command("revoke-key")
def audit_revoke_key(data_dir: DataDir = None) -> None:
    """Revoke the key of the last tree head (lost, or no longer trusted): log it, signed
    by the configured signer (DATAAUTH_AUDIT_SIGNING), which must be another key."""
    from dataauth.audit.rotation import KeyChangeRefused, load_signer, revoke_last
    from dataauth.policy.engines import in_process_engine
    from dataauth.policy.store import PolicyStore
    from dataauth.store.engine import gateway_engine

    settings = load_settings(data_dir)
    engine = gateway_engine(gateway_database(settings))
    signer = load_signer(settings.audit_signing, settings.keys_dir)
    try:
        bundle = PolicyStore(engine, in_process_engine).current_digest() or ""
        change = revoke_last(engine, signer, bundle)
    except KeyChangeRefused as exc:
        fail(f"cannot revoke: {exc}")
    typer.echo(
        f"revoked key {change['from_key_id']}; key {change['to_key_id']} "
        f"({change['to_algorithm']}) signs the next tree head"
    )
