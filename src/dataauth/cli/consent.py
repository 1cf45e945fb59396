"""``dataauth consent``: development consent tokens (授权) and revocations."""

from __future__ import annotations

from typing import Annotated

import typer

from dataauth.cli.common import (
    DEV_CONSENT_KEY,
    SUBJECT_KEY,
    DataDir,
    gateway_database,
    load_settings,
    refuse,
    require_gateway,
)

app = typer.Typer(
    help="Consent (授权) tokens from the development consent issuer; revocations.",
    no_args_is_help=True,
)


@app.command("issue")
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

    settings = load_settings(data_dir)
    if settings.consent_jwks_file is not None:
        refuse("a real consent issuer is configured: this one is not trusted")
    # the subject hash is keyed by the gateway's secret: a fresh one would match no one
    require_gateway(settings, DEV_CONSENT_KEY, SUBJECT_KEY)
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


@app.command("revoke")
def consent_revoke(
    jti: Annotated[str, typer.Argument(help="the consent token's id (its jti claim)")],
    by: Annotated[str, typer.Option(help="who revokes, for the record")] = "subject",
    data_dir: DataDir = None,
) -> None:
    """Revoke a consent: the gateway refuses it from the next request on."""
    from dataauth.identity.consent import ConsentVerifier
    from dataauth.store.engine import gateway_engine

    settings = load_settings(data_dir)
    database = gateway_engine(gateway_database(settings))
    ConsentVerifier(dict, settings.consent_issuer, database).revoke(jti, by)
    typer.echo(f"revoked consent {jti}")
