"""The ``dataauth`` command line."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from dataauth.catalog.model_status import STATUSES
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


@app.callback()
def _private_files() -> None:
    """Whatever a command writes (databases, keys, exports) is the user's alone."""
    from dataauth.files import private_umask

    private_umask()


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
    development_issuers: Annotated[
        bool,
        typer.Option(
            "--development-issuers",
            help="trust token and consent issuers generated under the data directory where "
            "no JWKS is configured (development only; --demo implies it) "
            "[env DATAAUTH_DEVELOPMENT_ISSUERS]",
        ),
    ] = False,
    workers: Annotated[int, typer.Option(help="worker processes (one per core)", min=1)] = 1,
) -> None:
    """Start the gateway. Outside --demo it needs its issuers: DATAAUTH_JWKS_FILE or
    DATAAUTH_JWKS_URL, and DATAAUTH_CONSENT_JWKS_FILE (or --development-issuers)."""
    import shutil

    import uvicorn
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    settings = _settings(
        data_dir,
        host=host,
        port=port,
        demo=demo or None,
        development_issuers=development_issuers or None,
    )
    refusal = settings.issuer_refusal()
    if refusal is not None:
        typer.echo(f"dataauth will not start: {refusal}", err=True)
        raise typer.Exit(2)
    # this process's workers write their metrics here, so a scrape of any one reports them
    # all; it must be set before prometheus_client is first imported. One folder per
    # serve process: another on the same data directory is a scrape target of its own.
    metrics_root = settings.data_dir / "metrics"
    for folder in metrics_root.glob("*"):
        if not _alive(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
    metrics_dir = metrics_root / str(os.getpid())
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    from dataauth.app import prepare

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
    os.environ["DATAAUTH_DEVELOPMENT_ISSUERS"] = "true" if settings.development_issuers else "false"
    typer.echo(f"dataauth listening on http://{settings.host}:{settings.port}")
    uvicorn.run(
        "dataauth.app:create_worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@app.command()
def health(
    url: Annotated[str | None, typer.Option(help="the gateway; this host's by default")] = None,
) -> None:
    """Exit 0 when the gateway answers /healthz, 1 otherwise (the container's health check)."""
    import httpx

    settings = Settings()
    target = url or f"http://127.0.0.1:{settings.port}"
    try:
        response = httpx.get(f"{target}/healthz", timeout=3)
    except httpx.HTTPError as exc:
        _fail(f"unhealthy: {target} does not answer ({type(exc).__name__})")
    if response.status_code != 200:
        _fail(f"unhealthy: {target}/healthz answered {response.status_code}")
    typer.echo(f"healthy: policy bundle {response.json().get('policy_bundle')}")


@app.command()
def token(
    operator: Annotated[str, typer.Option("--operator", help="the operator id, e.g. demo-bank")],
    data_dir: DataDir = None,
    ttl: Annotated[int, typer.Option("--ttl", help="lifetime in seconds", min=1, max=86400)] = 3600,
    role: Annotated[list[str] | None, typer.Option("--role", help="a role claim")] = None,
) -> None:
    """Print a token from the development issuer (development and demo only)."""
    from dataauth.identity.dev_issuer import issue_token
    from dataauth.identity.keys import Keyring

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


audit_app = typer.Typer(
    help="The audit log, offline: export it, verify it, replay its decisions.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on the terminal's stderr (nothing when it is not a terminal), as a
    callback taking (done, total)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    directory: Annotated[Path, typer.Argument(help="where to write the export")],
    data_dir: DataDir = None,
    start: Annotated[int, typer.Option("--from", help="first entry (rounded to a head)")] = 0,
    end: Annotated[int | None, typer.Option("--to", help="end (default: latest head)")] = None,
) -> None:
    """Export entries, signed tree heads, keys and policy bundles for offline checks."""
    from dataauth.audit.export import ExportError, export_log
    from dataauth.store.engine import gateway_engine

    settings = _settings(data_dir)
    with _progress("exporting") as progress:
        try:
            manifest = export_log(
                gateway_engine(settings.gateway_url), directory, start, end, progress
            )
        except ExportError as exc:
            _fail(f"cannot export: {exc}")
    typer.echo(
        f"exported entries [{manifest['from']}, {manifest['to']}) with {manifest['heads']} "
        f"tree heads and {len(manifest['bundles'])} policy bundles to {directory}"
    )
    if manifest["missing_bundles"]:
        typer.echo(f"warning: bundles not on record: {manifest['missing_bundles']}", err=True)


@audit_app.command("verify")
def audit_verify(directory: Annotated[Path, typer.Argument(help="an export")]) -> None:
    """Check an export offline: signatures, the head chain, every root, every entry."""
    from dataauth.audit.verify import Failed, verify_export

    with _progress("verifying") as progress:
        try:
            report = verify_export(directory, progress)
        except Failed as exc:
            _fail(f"FAILED: {exc}")
    typer.echo(
        f"verified: entries [{report.first}, {report.first + report.entries}), "
        f"{report.heads} signed tree heads, {report.keys} keys, {report.bundles} policy bundles"
    )
    typer.echo(f"latest root {report.last_head['root']} at size {report.last_head['size']}")


@audit_app.command("replay")
def audit_replay(directory: Annotated[Path, typer.Argument(help="an export")]) -> None:
    """Re-decide every recorded decision against the bundle that was in force."""
    from dataauth.audit.replay import replay_export
    from dataauth.audit.verify import Failed

    try:
        report = replay_export(directory)
    except (Failed, FileNotFoundError, KeyError, ValueError) as exc:
        _fail(f"FAILED: {exc}")
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


@audit_app.command("verify-receipt")
def audit_verify_receipt(
    receipt: Annotated[Path, typer.Argument(help="GET /v1/audit/proof/inclusion, saved")],
    keys: Annotated[Path, typer.Option(help="GET /v1/audit/keys or an export's keys.json")],
) -> None:
    """Check one receipt against its signed tree head and the log's public keys."""
    import json

    from dataauth.audit.verify import Failed, load_keys, verify_receipt

    try:
        verify_receipt(json.loads(receipt.read_text()), load_keys(json.loads(keys.read_text())))
    except (Failed, ValueError) as exc:
        _fail(f"FAILED: {exc}")
    typer.echo("the receipt verifies: the entry is in the signed log")


policy_app = typer.Typer(
    help="Policy bundles: check, digest, what-if on past traffic, publish.",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")

BundleDir = Annotated[Path, typer.Argument(help="the bundle folder")]


def _load(directory: Path) -> Any:
    from dataauth.policy.bundle import BundleError, load_bundle

    try:
        return load_bundle(directory)
    except BundleError as exc:
        _fail(f"FAILED: {exc}")


@policy_app.command("digest")
def policy_digest(directory: BundleDir = Path("policies")) -> None:
    """Print the bundle's identity: SHA-256 over its canonical content."""
    typer.echo(_load(directory).digest)


@policy_app.command("check")
def policy_check(directory: BundleDir = Path("policies")) -> None:
    """Compile the bundle and run its decision tables (tests/*.json)."""
    from dataauth.policy.bundle import BundleError
    from dataauth.policy.cases import check, load_cases
    from dataauth.policy.embedded import EmbeddedEngine

    bundle = _load(directory)
    try:
        engine = EmbeddedEngine(bundle)
    except BundleError as exc:
        _fail(f"FAILED: {exc}")
    cases = load_cases(directory)
    failures = 0
    for case in cases:
        problem = check(engine, case)
        if problem:
            failures += 1
            typer.echo(f"FAIL {case.source}: {case.name}: {problem}")
    typer.echo(f"{bundle.digest}: {len(cases) - failures} passed, {failures} failed")
    if failures or not cases:
        raise typer.Exit(1)


@policy_app.command("whatif")
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

    report = whatif(gateway_engine(_settings(data_dir).gateway_url), _load(candidate), since, until)
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


def _token(
    token: str | None,
    data_dir: Path | None,
    subject: str = "demo-department",
    roles: tuple[str, ...] = ("department",),
) -> str:
    """The token given, or a short one from the development issuer (a department's by
    default); with a real issuer configured, a token must be given."""
    from dataauth.identity.dev_issuer import issue_token
    from dataauth.identity.keys import Keyring

    if token is not None:
        return token
    settings = _settings(data_dir)
    if not settings.development_issuer:
        typer.echo("give --token: a token from your issuer", err=True)
        raise typer.Exit(2)
    return issue_token(
        Keyring(settings.keys_dir),
        subject=subject,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=300,
        roles=roles,
    )


@policy_app.command("publish")
def policy_publish(
    directory: BundleDir = Path("policies"),
    url: Annotated[str, typer.Option(help="the gateway")] = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(help="a department's token")] = None,
    data_dir: DataDir = None,
) -> None:
    """Check the bundle, then put it in force on the gateway (audited)."""
    import httpx

    policy_check(directory)
    bundle = _load(directory)
    token = _token(token, data_dir)
    response = httpx.post(
        f"{url}/v1/admin/policy",
        json=bundle.content(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if response.status_code != 200:
        _fail(f"FAILED: {response.json().get('detail', response.text)}")
    body = response.json()
    typer.echo(
        f"published {body['digest']} (was {body['previous'] or 'none'}), "
        f"audit entry {body['audit']['entry']}"
    )


models_app = typer.Typer(
    help="Submitted models (模型): submit, list, show, approve, reject, over HTTP.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

GatewayUrl = Annotated[str, typer.Option("--url", help="the gateway")]
Token = Annotated[str | None, typer.Option(help="a token (default: the development issuer's)")]


def _call(
    method: str,
    url: str,
    path: str,
    token: str | None,
    data_dir: Path | None,
    *,
    subject: str = "demo-department",
    roles: tuple[str, ...] = ("department",),
    body: Any = None,
) -> Any:
    """One request to the gateway with a token: the given one, or one from the development
    issuer (a department's by default); a problem ends the command with its detail."""
    import httpx

    token = _token(token, data_dir, subject, roles)
    try:
        response = httpx.request(
            method, f"{url}{path}", json=body, headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        _fail(f"FAILED: cannot reach the gateway at {url}: {exc}")
    if response.status_code >= 400:
        problem = response.json() if response.content else {}
        _fail(f"FAILED ({problem.get('code', response.status_code)}): {problem.get('detail')}"
              f"{_listed(problem.get('errors', []))}")  # fmt: skip
    return response.json()


def _listed(errors: list[dict[str, Any]]) -> str:
    """A problem's errors, one a line, each where it is and what is wrong: a catalog
    problem says where as ``at``, a request off the schema as ``loc`` (api/problems.py)."""
    return "".join(
        f"\n  {e.get('at', '.'.join(str(p) for p in e.get('loc', ())))}: {e.get('message')}"
        for e in errors
    )


def _echo_json(value: Any) -> None:
    import json

    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@models_app.command("submit")
def models_submit(
    model: Annotated[Path, typer.Argument(help="the ONNX file")],
    manifest: Annotated[Path, typer.Option(help="the manifest (JSON)")],
    operator: Annotated[str, typer.Option(help="the submitting operator")] = "demo-bank",
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Submit a model for review (an operator's token)."""
    import base64
    import json

    body = {
        "manifest": json.loads(manifest.read_text(encoding="utf-8")),
        "onnx": base64.b64encode(model.read_bytes()).decode(),
    }
    shown = _call("POST", url, "/v1/models", token, data_dir, subject=operator,
                  roles=("operator",), body=body)  # fmt: skip
    typer.echo(f"submitted {shown['id']} ({shown['digest']}): {shown['status']}, "
               f"audit entry {shown['audit']['entry']}")  # fmt: skip


@models_app.command("list")
def models_list(
    status: Annotated[str | None, typer.Option(help=", ".join(STATUSES))] = None,
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List submissions (a department sees every one)."""
    query = f"?status={status}" if status else ""
    for row in _call("GET", url, f"/v1/models{query}", token, data_dir)["models"]:
        manifest = row["manifest"]
        typer.echo(
            f"{row['id']}  {row['status']:<8}  {row['operator']:<14} {manifest['name']:<20} "
            f"{manifest['dataset']}  {', '.join(manifest['forms'])}  {row['submitted_at']}"
        )


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="the model id (m-…)")],
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Show a submission: manifest, the graph's summary with every weight tensor
    summarised, the leakage check run afresh on the department's rows, its review."""
    _echo_json(_call("GET", url, f"/v1/models/{model}", token, data_dir))


@models_app.command("approve")
def models_approve(
    model: Annotated[str, typer.Argument(help="the model id (m-…)")],
    expires: Annotated[str, typer.Option(help="until when (ISO 8601, UTC)")],
    max_runs: Annotated[int | None, typer.Option(help="runs allowed in all")] = None,
    form: Annotated[list[str] | None, typer.Option(help="a form allowed (repeat)")] = None,
    note: Annotated[str, typer.Option(help="for the record")] = "",
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Approve a pending model, with conditions (a department's token; audited)."""
    body = {"expires": expires, "max_runs": max_runs, "forms": form or None, "note": note}
    shown = _call("POST", url, f"/v1/models/{model}/approve", token, data_dir, body=body)
    conditions = shown["review"]["conditions"]
    typer.echo(
        f"approved {shown['id']} until {conditions['expires']}, "
        f"max runs {conditions['max_runs'] or 'unlimited'}, "
        f"forms {', '.join(conditions['forms'])}{_release(conditions.get('release'))}; "
        f"audit entry {shown['audit']['entry']}"
    )


def _release(release: dict[str, Any] | None) -> str:
    """The score release the leakage check obliges, as the approval records it."""
    if not release:
        return ""
    if "score_bands" in release:
        return f", scores in bands {release['score_bands']['labels']}"
    return f", scores to {release['score_digits']} digits"


def _close_review(
    action: str, done: str, model: str, reason: str, url: str, token: str | None,
    data_dir: Path | None,
) -> None:  # fmt: skip
    shown = _call("POST", url, f"/v1/models/{model}/{action}", token, data_dir,
                  body={"reason": reason})  # fmt: skip
    typer.echo(f"{done} {shown['id']}: {reason}; audit entry {shown['audit']['entry']}")


@models_app.command("reject")
def models_reject(
    model: Annotated[str, typer.Argument(help="the model id (m-…)")],
    reason: Annotated[str, typer.Option(help="why, shown to the operator")],
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Reject a pending model with a reason (a department's token; audited)."""
    _close_review("reject", "rejected", model, reason, url, token, data_dir)


@models_app.command("revoke")
def models_revoke(
    model: Annotated[str, typer.Argument(help="the model id (m-…)")],
    reason: Annotated[str, typer.Option(help="why, shown to the operator")],
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Withdraw a model's approval with a reason (a department's token; audited)."""
    _close_review("revoke", "revoked", model, reason, url, token, data_dir)


consent_app = typer.Typer(
    help="Consent (授权) tokens from the development consent issuer; revocations.",
    no_args_is_help=True,
)
app.add_typer(consent_app, name="consent")


@consent_app.command("issue")
def consent_issue(
    subject: Annotated[str, typer.Option(help="the subject's key, e.g. an ID number")],
    operator: Annotated[str, typer.Option(help="the operator consented to")],
    purpose: Annotated[str, typer.Option(help="the purpose consented to")],
    product: Annotated[list[str], typer.Option(help="a product consented to (repeat)")],
    dataset: Annotated[str, typer.Option(help="the subject's dataset")] = "residents",
    ttl: Annotated[int, typer.Option(help="lifetime in seconds", min=1)] = 86400,
    data_dir: DataDir = None,
) -> None:
    """Print a consent token (development and demo only: a real one comes from the
    department's consent platform)."""
    from dataauth.identity.consent import issue_consent
    from dataauth.identity.keys import Keyring

    settings = _settings(data_dir)
    if settings.consent_jwks_file is not None:
        typer.echo("a real consent issuer is configured: this one is not trusted", err=True)
        raise typer.Exit(2)
    keyring = Keyring(settings.keys_dir)
    typer.echo(
        issue_consent(
            keyring,
            issuer=settings.consent_issuer,
            subject_hash=keyring.subject_hasher()(dataset, subject),
            operator=operator,
            purpose=purpose,
            products=product,
            ttl_seconds=ttl,
        )
    )


@consent_app.command("revoke")
def consent_revoke(
    jti: Annotated[str, typer.Argument(help="the consent token's id (its jti claim)")],
    by: Annotated[str, typer.Option(help="who revokes, for the record")] = "subject",
    data_dir: DataDir = None,
) -> None:
    """Revoke a consent: the gateway refuses it from the next request on."""
    from dataauth.identity.consent import ConsentVerifier
    from dataauth.store.engine import gateway_engine

    settings = _settings(data_dir)
    verifier = ConsentVerifier(dict, settings.consent_issuer, gateway_engine(settings.gateway_url))
    verifier.revoke(jti, by)
    typer.echo(f"revoked consent {jti}")


catalog_app = typer.Typer(
    help="The catalog (分类分级): datasets, classified columns, products, joins, licences.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")

CatalogFile = Annotated[Path, typer.Argument(help="a catalog document (JSON)")]


def _read_catalog(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {path}: {exc}")


@catalog_app.command("check")
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
        _fail(f"FAILED ({problem.code}): {problem.detail}{_listed(errors)}")
    finally:
        if domain is not None:
            domain.dispose()
    counts = ", ".join(f"{n} {section}" for section, n in checked.counts().items())
    against = " and the database" if domain_url else ""
    typer.echo(f"ok: {counts}; checked on its own{against}; {digest(checked)}")


@catalog_app.command("apply")
def catalog_apply(
    document: CatalogFile,
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Publish a catalog document on the gateway (a department's token; audited)."""
    shown = _call("PUT", url, "/v1/admin/catalog", token, data_dir, body=_read_catalog(document))
    counts = ", ".join(f"{n} {section}" for section, n in shown["counts"].items())
    typer.echo(f"published {shown['digest']} ({counts}); audit entry {shown['audit']['entry']}")
    for warning in shown["warnings"]:
        typer.echo(f"warning: {warning['at']}: {warning['message']}", err=True)


@catalog_app.command("show")
def catalog_show(
    url: GatewayUrl = "http://127.0.0.1:8080",
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Print the gateway's catalog as a document (a department's token)."""
    _echo_json(_call("GET", url, "/v1/admin/catalog", token, data_dir))


db_app = typer.Typer(
    help="The gateway database's schema (Alembic migrations).", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="the revision to reach")] = "head",
    data_dir: DataDir = None,
) -> None:
    """Migrate the gateway database (DATAAUTH_DATABASE_URL) to a revision; serve does
    this itself, so a deployment runs it only to migrate ahead of a rollout."""
    from sqlalchemy import create_engine

    from dataauth.store.engine import migrate, schema_revision

    engine = create_engine(_settings(data_dir).gateway_url)
    try:
        migrate(engine, revision)
    except Exception as exc:
        _fail(f"the migration failed: {exc}")
    typer.echo(f"gateway database at revision {schema_revision(engine)}")


@db_app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Print the gateway database's schema revision (none for an empty database)."""
    from sqlalchemy import create_engine

    from dataauth.store.engine import schema_revision

    typer.echo(schema_revision(create_engine(_settings(data_dir).gateway_url)) or "none")


he_app = typer.Typer(
    help="Encrypted scoring (密态计算): a regulator's check of a model filing (算法备案).",
    no_args_is_help=True,
)
app.add_typer(he_app, name="he")


@he_app.command("filing")
def he_filing(
    model: Annotated[str, typer.Argument(help="the model's id (sha256:…)")],
    url: Annotated[
        str, typer.Option("--url", envvar="DATAAUTH_URL", help="the gateway [env DATAAUTH_URL]")
    ] = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(help="a regulator's token")] = None,
    data_dir: DataDir = None,
) -> None:
    """Print a filing as the gateway holds it (JSON): with a regulator's token."""
    path = f"/v1/he/models/{model}/filing"
    _echo_json(_call("GET", url, path, token, data_dir, subject="regulator", roles=("regulator",)))


@he_app.command("check-filing")
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
        _fail(f"FAILED: cannot read the filing or the bundle: {exc!r}")
    if problems:
        for found in problems:
            typer.echo(f"{found['code']}: {found['detail']}")
        _fail(f"FAILED: {len(problems)} problem(s) in filing {filed.get('id')}")
    typer.echo(
        f"OK: filing {filed['id']} of {filed['operator']}: {len(filed['weights'])} weights "
        "and the bias decrypt to the revealed model, which gives the commitment and keeps "
        "within the declared bounds"
    )


if __name__ == "__main__":
    app()
