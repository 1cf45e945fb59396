"""Settings, from environment variables (``DATAAUTH_*``) and command-line options."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SOURCE_POLICIES = Path(__file__).resolve().parents[2] / "policies"
PACKAGED_POLICIES = Path(__file__).resolve().parent / "_policies"
# the in-process engine live decisions, replay and what-if use unless told otherwise
POLICY_ENGINE = "regorus"


class Settings(BaseSettings):
    """Everything the gateway reads at start. Defaults give a local development gateway."""

    # an empty variable is unset: `-e DATAAUTH_JWKS_FILE=` takes back what an image set
    model_config = SettingsConfigDict(env_prefix="DATAAUTH_", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Field(Path(".dataauth"), description="gateway database, keys, demo domain")
    database_url: str | None = Field(None, description="gateway database; SQLite in data_dir")
    domain_url: str | None = Field(None, description="the department's database (read only)")
    policy_dir: Path | None = Field(None, description="the Rego bundle; ./policies by default")
    demo: bool = Field(
        False, description="create and serve the demo domain (implies development_issuers)"
    )
    development_issuers: bool = Field(
        False,
        description="trust the token and consent issuers generated under data_dir where no "
        "JWKS is configured: they mint any role, so for development only",
    )
    host: str = "127.0.0.1"
    port: int = 8080

    issuer: str = Field("dataauth-dev", description="the trusted token issuer (iss)")
    audience: str = Field("dataauth", description="this gateway's audience (aud)")
    jwks_file: Path | None = Field(
        None, description="the issuer's JWKS (operators, departments, regulators)"
    )
    jwks_url: str | None = Field(None, description="the issuer's JWKS URL")
    consent_issuer: str = Field("dataauth-consent-dev", description="trusted consent issuer")
    consent_jwks_file: Path | None = Field(None, description="its JWKS; unset: development")
    token_leeway_seconds: int = Field(30, ge=0, le=300)
    max_token_bytes: int = Field(8192, ge=512)

    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    max_model_bytes: int = Field(1024 * 1024, ge=1024, description="largest ONNX model accepted")
    he_max_body_bytes: int = Field(
        12 * 1024 * 1024,
        ge=1024,
        description="body limit of /v1/he/ routes: a 16-feature model at degree 8192 is ~7.5 MB",
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="longest a request body may take to arrive (then 408)"
    )
    he_registration_days: float = Field(30.0, gt=0, description="HE contexts and models expire")
    rejections_per_minute: int = Field(
        60, ge=1, description="an operator's malformed requests logged a minute (then 429)"
    )
    max_batch: int = Field(10_000, ge=1, description="hard ceiling above any policy batch limit")
    policy_timeout_ms: float = Field(250.0, gt=0)
    timezone: str = Field("Asia/Shanghai", description="the department's days and hours")
    policy_engine: str = Field(
        POLICY_ENGINE, pattern="^(regorus|embedded|opa)$", description="see docs/deployment.md"
    )
    opa_url: str = Field("http://127.0.0.1:8181", description="the OPA server (policy_engine=opa)")
    catalog_ttl_seconds: float = Field(2.0, ge=0, description="how stale a cached licence may be")
    sqlite_synchronous: str = Field("FULL", pattern="^(NORMAL|FULL|EXTRA)$")
    audit_signing: str = Field(
        "ed25519",
        pattern="^(ed25519|sm2)$",
        description="the tree-head signature: Ed25519, or SM2 with SM3 (国密); a change is "
        "logged as a key rotation signed by the old key",
    )
    head_delay_ms: float = Field(
        100.0, gt=0, description="at most one tree head per this interval, across workers"
    )
    tsa_url: str | None = Field(
        None, description="an RFC 3161 time-stamping authority; unset: no time-stamps"
    )
    tsa_roots: Path | None = Field(None, description="the TSA's trusted roots (PEM)")
    tsa_interval: float = Field(60.0, gt=0, description="seconds between time-stamps")
    tsa_max_age: float = Field(
        1800.0, gt=0, description="longest a tree head may wait for its stamp (then 503)"
    )
    tsa_timeout: float = Field(10.0, gt=0, description="seconds a TSA request may take")

    log_origin: str | None = Field(
        None,
        pattern=r"^[^\s+]+$",
        description="the log's C2SP checkpoint origin, e.g. gateway.example.gov.cn/audit; "
        "default: the newest checkpoint's, else dataauth/<note key id>",
    )
    witnesses: list[str] = Field(
        default_factory=list,
        description="witnesses to push each checkpoint to, each '<url> <cosignature vkey>'; "
        'as JSON, e.g. ["https://w1.example/ w1.example+1a2b3c4d+BD..."]',
    )
    witness_interval: float = Field(
        1.0, gt=0, description="seconds between pushes to each witness (the newest checkpoint)"
    )
    domain_timeout_ms: float = Field(
        5000.0, gt=0, description="longest a statement may run in the department's database"
    )
    metrics_token: SecretStr | None = Field(
        None, description="a bearer token /metrics requires; unset: open (internal network)"
    )
    log_format: str = Field(
        "auto", pattern="^(auto|json|text)$", description="auto: text on a terminal, else JSON"
    )
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def gateway_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'gateway.sqlite'}"

    @property
    def department_url(self) -> str:
        return self.domain_url or f"sqlite:///{self.data_dir / 'demo-domain.sqlite'}"

    @property
    def development_issuer(self) -> bool:
        """True where no issuer is configured, so the generated development issuer is trusted."""
        return self.jwks_file is None and self.jwks_url is None

    def issuer_refusal(self) -> str | None:
        """Why the gateway must not start with these issuers, or None. A development issuer
        is trusted only when asked for: its key lies in the data directory and mints
        operator, department and regulator tokens, so trusting it by default would let
        anyone who reads that folder be anyone."""
        unreadable = [
            f"{name} names {path}, which is not a readable file"
            for name, path in (
                ("DATAAUTH_JWKS_FILE", self.jwks_file),
                ("DATAAUTH_CONSENT_JWKS_FILE", self.consent_jwks_file),
            )
            if path is not None and not path.is_file()
        ]
        if unreadable:
            return "; ".join(unreadable)
        tsa = self.tsa_refusal()
        if tsa is not None:
            return tsa
        if self.demo or self.development_issuers:
            return None
        missing = []
        if self.development_issuer:
            missing.append("DATAAUTH_JWKS_FILE or DATAAUTH_JWKS_URL (the token issuer's keys)")
        if self.consent_jwks_file is None:
            missing.append("DATAAUTH_CONSENT_JWKS_FILE (the consent issuer's keys)")
        if not missing:
            return None
        return (
            "no trusted issuer is configured: set "
            + " and ".join(missing)
            + "; or, for development only, start with --development-issuers "
            "(DATAAUTH_DEVELOPMENT_ISSUERS=1) to trust issuers generated under the data "
            "directory (--demo implies it)"
        )

    def tsa_refusal(self) -> str | None:
        """Why these time-stamping settings cannot run, or None: a TSA whose tokens no
        root checks would be trusted blindly, and an allowed period no longer than the
        interval would refuse between any two stamps."""
        if self.tsa_url is None:
            return None
        if self.tsa_roots is None or not self.tsa_roots.is_file():
            return "DATAAUTH_TSA_URL is set: DATAAUTH_TSA_ROOTS must name the TSA's roots (PEM)"
        if self.tsa_max_age <= self.tsa_interval + self.tsa_timeout:
            return (
                "DATAAUTH_TSA_MAX_AGE must be longer than DATAAUTH_TSA_INTERVAL plus "
                "DATAAUTH_TSA_TIMEOUT (a few intervals, so one failed round is not a refusal)"
            )
        return None

    def policies(self) -> Path:
        """Where the bundle is: the setting, ./policies, the source tree, or the packaged copy."""
        if self.policy_dir is not None:
            return self.policy_dir
        for candidate in (Path("policies"), SOURCE_POLICIES, PACKAGED_POLICIES):
            if (candidate / "dataauth").is_dir():
                return candidate
        return Path("policies")
