"""Assembly: settings in, a FastAPI app out. The one place that names the operation kinds."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from dataauth import __version__, files, logs
from dataauth.accounts.disclosure import DisclosureLedger
from dataauth.accounts.privacy import PrivacyBudgets
from dataauth.accounts.usage import UsageMeter
from dataauth.admin.catalog import CatalogAdmin
from dataauth.admin.he import HEAdmin
from dataauth.admin.policy import PolicyAdmin
from dataauth.admin.review import ModelReview
from dataauth.admin.steps import Steps
from dataauth.admin.usage import UsageReports
from dataauth.api import openapi, problems
from dataauth.api.audit import router as audit_router
from dataauth.api.catalog import router as catalog_router
from dataauth.api.demo import router as demo_router
from dataauth.api.he import router as he_router
from dataauth.api.limits import BodyLimit
from dataauth.api.observe import DOCS_ASSETS, Observe
from dataauth.api.operations import operation_routes, spine_threads
from dataauth.api.query import router as query_router
from dataauth.api.review import router as review_router
from dataauth.api.routes import router
from dataauth.api.tlog import router as tlog_router
from dataauth.api.usage import router as usage_router
from dataauth.audit.checkpoints import note_signer
from dataauth.audit.ledger import HeadSigner, Ledger
from dataauth.audit.log import AuditLog
from dataauth.audit.pusher import WitnessEndpoint, WitnessPusher
from dataauth.audit.rotation import load_signer, rotate_to
from dataauth.audit.stamper import Freshness, Stamper
from dataauth.audit.timestamps import load_roots
from dataauth.audit.writer import ENVIRONMENT as AUDIT_WRITER
from dataauth.audit.writer import WriterClient
from dataauth.canonical import utc_now
from dataauth.catalog.he import HEFilings
from dataauth.catalog.store import Catalog
from dataauth.catalog.submissions import Submissions
from dataauth.config import Settings
from dataauth.console import router as console_router
from dataauth.console import static_files as console_static
from dataauth.demo import domain as demo
from dataauth.domain.database import Domain, open_domain
from dataauth.gateway import Gateway
from dataauth.identity.access import Access
from dataauth.identity.consent import ConsentVerifier
from dataauth.identity.keys import Keyring
from dataauth.identity.tokens import TokenVerifier, jwks_from_file, jwks_from_url
from dataauth.operations.aggregate import Aggregate
from dataauth.operations.encrypted import EncryptedScore
from dataauth.operations.model import Model
from dataauth.operations.verify import Verify
from dataauth.policy.bundle import Bundle, load_bundle
from dataauth.policy.decision import PolicyEngine
from dataauth.policy.engines import in_process_engine
from dataauth.policy.opa import OpaServerEngine
from dataauth.policy.store import PolicyStore
from dataauth.store.engine import gateway_engine


def prepare(settings: Settings, progress: demo.Progress | None = None) -> None:
    """Make what every worker needs, once, before any starts: tables, keys, the demo."""
    refuse_untrusted_issuers(settings)
    files.private_umask()
    storage = gateway_engine(settings.gateway_url, sqlite_synchronous=settings.sqlite_synchronous)
    keyring = Keyring(settings.keys_dir)
    keyring.subject_hasher()
    ledger = audit_ledger(settings, storage)
    # heads signed before there were checkpoints get theirs, once, before any worker serves
    ledger.sign_missing_checkpoints()
    # the policies folder seeds the first publication; later ones go through publish
    compiled = lambda bundle: in_process_engine(bundle, settings.policy_engine)  # noqa: E731
    policy = PolicyStore(storage, compiled)
    policy.seed(load_bundle(settings.policies()))
    # once, before any worker signs: a head by a new key must follow its logged rotation
    rotate_to(storage, ledger.signer, settings.keys_dir, policy.current_digest() or "")
    if settings.development_issuer:
        keyring.dev_issuer_key()
    if settings.consent_jwks_file is None:
        keyring.dev_consent_key()
    if settings.demo:
        path = Path(settings.department_url.removeprefix("sqlite:///"))
        # a demo database of an older revision (another column, other rows) is made again
        if settings.department_url.startswith("sqlite:///") and (
            not path.exists() or demo.is_stale(path)
        ):
            demo.create_domain(path, progress)
        demo.register_catalog(storage)
    storage.dispose()
    # the demo domain is ours to make private; a department's own database is not
    databases = [settings.gateway_url] + ([settings.department_url] if settings.demo else [])
    files.make_private(settings.data_dir, *databases)


class UntrustedIssuers(RuntimeError):
    """The settings name no issuer to trust, and development issuers were not asked for."""


def refuse_untrusted_issuers(settings: Settings) -> None:
    refusal = settings.issuer_refusal()
    if refusal is not None:
        raise UntrustedIssuers(refusal)


def token_verifier(settings: Settings, keyring: Keyring) -> TokenVerifier:
    if settings.jwks_url:
        source = jwks_from_url(settings.jwks_url)
    elif settings.jwks_file:
        source = jwks_from_file(settings.jwks_file)
    else:
        source = keyring.dev_issuer_jwks
    return TokenVerifier(
        source,
        issuer=settings.issuer,
        audience=settings.audience,
        max_bytes=settings.max_token_bytes,
        leeway=settings.token_leeway_seconds,
    )


def engine_factory(settings: Settings) -> Callable[[Bundle], PolicyEngine]:
    """How a bundle becomes an engine: in process (regorus by default, or regopy) or on
    an OPA server."""
    if settings.policy_engine == "opa":
        return lambda bundle: OpaServerEngine(bundle, settings.opa_url, settings.policy_timeout_ms)
    name, timeout = settings.policy_engine, settings.policy_timeout_ms
    return lambda bundle: in_process_engine(bundle, name, timeout)


def audit_ledger(settings: Settings, storage: Any) -> Ledger:
    """The log's ledger with its head signer and its checkpoints' Ed25519 note signer."""
    heads = load_signer(settings.audit_signing, settings.keys_dir)
    notes = note_signer(storage, heads, settings.keys_dir, settings.log_origin)
    return Ledger(storage, heads, notes)


def build_gateway(settings: Settings) -> tuple[Gateway, Ledger, HeadSigner]:
    keyring = Keyring(settings.keys_dir)
    storage = gateway_engine(settings.gateway_url, sqlite_synchronous=settings.sqlite_synchronous)
    catalog = Catalog(storage, settings.catalog_ttl_seconds)
    domain = Domain(
        open_domain(settings.department_url, settings.domain_timeout_ms), settings.domain_timeout_ms
    )
    policy = PolicyStore(storage, engine_factory(settings), settings.catalog_ttl_seconds)
    ledger = audit_ledger(settings, storage)
    signer = HeadSigner(ledger, settings.head_delay_ms / 1000)
    usage = UsageMeter(storage, settings.timezone)
    budgets = PrivacyBudgets(storage)  # ε accounts: queries, model and HE cohorts spend from one
    models = Submissions(storage)
    registry = HEFilings(storage, catalog, settings.he_registration_days)
    hasher = keyring.subject_hasher()
    kinds = [
        Verify(catalog, domain, hasher),
        Aggregate(catalog, domain, budgets),
        Model(catalog, domain, hasher, models, budgets, utc_now),
        EncryptedScore(catalog, domain, hasher, registry, budgets, utc_now),
    ]
    gateway = Gateway(
        access=Access(token_verifier(settings, keyring), catalog),
        policy=policy,
        audit=AuditLog(storage, on_commit=signer.notify, remote=audit_writer()),
        kinds={kind.name: kind for kind in kinds},
        usage=usage,
        consent=ConsentVerifier(
            jwks_from_file(settings.consent_jwks_file)
            if settings.consent_jwks_file
            else keyring.dev_consent_jwks,
            settings.consent_issuer,
            storage,
        ),
        disclosures=DisclosureLedger(storage),
        max_batch=settings.max_batch,
        rejections_per_minute=settings.rejections_per_minute,
        timestamping=Freshness(settings.tsa_max_age) if settings.tsa_url else None,
    )
    return gateway, ledger, signer


def audit_writer() -> WriterClient | None:
    """The writer ``dataauth serve --workers`` runs for its workers, if this is one."""
    path = os.environ.get(AUDIT_WRITER)
    return WriterClient(path) if path else None


def time_stamper(settings: Settings, ledger: Ledger, gateway: Gateway) -> Stamper | None:
    """The stamper thread where a TSA is configured (off by default)."""
    if settings.tsa_url is None or gateway.timestamping is None or settings.tsa_roots is None:
        return None
    return Stamper(
        ledger,
        gateway.timestamping,
        settings.tsa_url,
        load_roots(settings.tsa_roots),
        settings.tsa_interval,
        settings.tsa_timeout,
    )


def create_app(settings: Settings | None = None, *, prepared: bool = False) -> FastAPI:
    """The gateway as an ASGI app (``uvicorn --factory dataauth.app:create_app``)."""
    settings = settings or Settings()
    logs.configure(settings.log_format, settings.log_level)
    refuse_untrusted_issuers(settings)
    files.private_umask()
    if not prepared:
        prepare(settings)
    gateway, ledger, signer = build_gateway(settings)
    stamper = time_stamper(settings, ledger, gateway)
    # each head this process signs wakes the pusher; the witnesses' answers come later
    pusher = WitnessPusher(
        ledger,
        [WitnessEndpoint.parse(w) for w in settings.witnesses],
        interval_seconds=settings.witness_interval,
    )
    signer.on_head = pusher.notify
    models: Any = gateway.kinds["model"]
    steps = Steps(
        gateway.access, gateway.audit, gateway.policy, gateway.clock, gateway.timestamping
    )
    review = ModelReview(steps, models.registry, settings.max_model_bytes, models.domain)
    threads = spine_threads()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        signer.start()
        if stamper is not None:
            stamper.start()
        pusher.start()
        yield
        if stamper is not None:
            stamper.stop()
        signer.stop()
        pusher.stop()

    # /docs and /redoc load Swagger UI and ReDoc from the installed package, not a CDN: a
    # gateway on a government network often reaches no CDN, and a page should not either
    app = FastAPIOffline(
        title="dataauth",
        version=__version__,
        description="Answers, not data: verification (核验) and more under policy and audit.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        # Swagger UI would otherwise show a badge fetched from the public validator
        swagger_ui_parameters={"validatorUrl": None},
        # FastAPI's own OpenTelemetry spans, metrics and logs stay off: they would carry
        # the path as sent and its query, where ours carry route templates (logs.py,
        # metrics.py); off, a request no longer asks whether a provider is configured
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.gateway = gateway
    app.state.ledger = ledger
    app.state.model_review = review
    app.state.settings = settings
    app.state.he_admin = HEAdmin(steps, gateway.kinds[EncryptedScore.name].registry)
    app.state.usage_reports = UsageReports(gateway, ledger)
    app.state.policy_admin = PolicyAdmin(steps, settings.policy_engine)
    verify: Any = gateway.kinds[Verify.name]
    app.state.catalog_admin = CatalogAdmin(steps, verify.domain.engine)
    problems.install(app)
    openapi.install(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        prefixes={"/v1/he/": settings.he_max_body_bytes},
        timeout=settings.body_timeout_seconds,
    )
    app.add_middleware(Observe)  # added last: outermost, it sees every response
    operations, app.state.operations = operation_routes(gateway.kinds.values(), threads)
    # the operations first: a request is matched against each route in turn, and no
    # other route shares an operation's method and path
    app.include_router(operations)
    app.include_router(router)
    app.include_router(he_router)
    app.include_router(audit_router)
    app.include_router(tlog_router)
    app.include_router(query_router)
    app.include_router(review_router)
    app.include_router(catalog_router)
    app.include_router(demo_router)
    app.include_router(usage_router)
    app.include_router(console_router)
    app.mount("/console/static", console_static(), name="console-static")
    # what is loaded by now (libraries, catalog, compiled policy) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks it, which
    # made a batch's request parsing twice as slow with every library loaded
    gc.freeze()
    return app


def create_worker_app() -> FastAPI:
    """The app of one of several workers: ``dataauth serve --workers`` prepared already."""
    return create_app(Settings(), prepared=True)
