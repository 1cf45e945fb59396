"""The top-level commands: serve the gateway, check its health, mint a development token."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from dataauth.cli.common import (
    SHOWN_DEFAULTS,
    DataDir,
    development_token,
    fail,
    load_settings,
    refuse,
)

if TYPE_CHECKING:
    from dataauth.audit.writer import WriterServer
    from dataauth.config import Settings


def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="address to listen on \\[env DATAAUTH_HOST]",
            show_default=SHOWN_DEFAULTS["host"],
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="port to listen on \\[env DATAAUTH_PORT]",
            show_default=SHOWN_DEFAULTS["port"],
        ),
    ] = None,
    data_dir: DataDir = None,
    demo: Annotated[bool, typer.Option("--demo", help="create and serve the demo domain")] = False,
    development_issuers: Annotated[
        bool,
        typer.Option(
            "--development-issuers",
            help="trust token and consent issuers generated under the data directory where "
            "no JWKS is configured (development only; --demo implies it) "
            "\\[env DATAAUTH_DEVELOPMENT_ISSUERS]",
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(help="worker processes (one per core)", min=1, show_default=True)
    ] = 1,
) -> None:
    """Start the gateway. Outside --demo it needs its issuers: DATAAUTH_JWKS_FILE or
    DATAAUTH_JWKS_URL, and DATAAUTH_CONSENT_JWKS_FILE (or --development-issuers)."""
    import shutil

    import uvicorn
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    settings = load_settings(
        data_dir,
        host=host,
        port=port,
        demo=demo or None,
        development_issuers=development_issuers or None,
    )
    refusal = settings.issuer_refusal()
    if refusal is not None:
        refuse(f"dataauth will not start: {refusal}")
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
    from dataauth.audit.rotation import KeyChangeRefused

    with Progress(
        TextColumn("demo domain: {task.description}"), BarColumn(), MofNCompleteColumn()
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        try:
            prepare(settings, progress)
        except KeyChangeRefused as exc:
            refuse(f"dataauth will not start: {exc}")
    # workers are separate processes: they read the same settings from the environment
    os.environ["DATAAUTH_DATA_DIR"] = str(settings.data_dir)
    os.environ["DATAAUTH_DEMO"] = "true" if settings.demo else "false"
    os.environ["DATAAUTH_DEVELOPMENT_ISSUERS"] = "true" if settings.development_issuers else "false"
    # one worker writes its own entries; a writer's socket named by a parent is not ours
    os.environ.pop("DATAAUTH_AUDIT_WRITER", None)
    writer = _audit_writer(settings) if workers > 1 else None
    typer.echo(f"dataauth listening on http://{settings.host}:{settings.port}")
    try:
        uvicorn.run(
            "dataauth.app:create_worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
    finally:
        if writer is not None:
            writer.stop()
            os.rmdir(os.path.dirname(writer.path))


def _audit_writer(settings: Settings) -> WriterServer:
    """The one writer of the workers' audit entries, in this process: they share its
    commits (and fsyncs) instead of taking turns on the write lock."""
    import tempfile

    from dataauth.audit.log import AuditLog
    from dataauth.audit.writer import ENVIRONMENT, WriterServer
    from dataauth.store.engine import gateway_engine

    engine = gateway_engine(settings.gateway_url, sqlite_synchronous=settings.sqlite_synchronous)
    # a folder of its own, private and short: a socket's path is limited to 107 bytes
    folder = tempfile.mkdtemp(prefix="dataauth-")
    writer = WriterServer(AuditLog(engine), os.path.join(folder, "audit.sock"))
    writer.start()
    os.environ[ENVIRONMENT] = writer.path
    return writer


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def health(
    url: Annotated[str | None, typer.Option(help="the gateway; this host's by default")] = None,
) -> None:
    """Exit 0 when the gateway answers /healthz, 1 otherwise (the container's health check)."""
    from dataauth.sdk.client import Client, GatewayError, GatewayUnreachable

    target = url or f"http://127.0.0.1:{load_settings(None).port}"
    try:
        with Client(target) as client:
            answer = client.health()
    except GatewayUnreachable as exc:
        fail(f"unhealthy: {target} does not answer ({type(exc.cause).__name__})")
    except GatewayError as exc:
        fail(f"unhealthy: {target}/healthz answered {exc.status}")
    typer.echo(f"healthy: policy bundle {answer.get('policy_bundle')}")


def token(
    operator: Annotated[str, typer.Option("--operator", help="the operator id, e.g. demo-bank")],
    data_dir: DataDir = None,
    ttl: Annotated[int, typer.Option("--ttl", help="lifetime in seconds", min=1, max=86400)] = 3600,
    role: Annotated[list[str] | None, typer.Option("--role", help="a role claim")] = None,
) -> None:
    """Print a token from the development issuer (development and demo only)."""
    settings = load_settings(data_dir)
    if not settings.development_issuer:
        refuse(
            "a real issuer is configured (DATAAUTH_JWKS_FILE or DATAAUTH_JWKS_URL): "
            "the development issuer is not trusted, ask your issuer for a token"
        )
    typer.echo(development_token(settings, operator, tuple(role or ("operator",)), ttl))
