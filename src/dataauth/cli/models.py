"""``dataauth models``: submitted models (模型) and their review, over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dataauth.catalog.model_status import STATUSES
from dataauth.cli.common import DEFAULT_URL, DataDir, GatewayUrl, Token, echo_json, gateway

app = typer.Typer(
    help="Submitted models (模型): submit, list, show, approve, reject, over HTTP.",
    no_args_is_help=True,
)

ModelId = Annotated[str, typer.Argument(help="the model id (m-…)")]
Reason = Annotated[str, typer.Option(help="why, shown to the operator")]


@app.command("submit")
def models_submit(
    model: Annotated[Path, typer.Argument(help="the ONNX file")],
    manifest: Annotated[Path, typer.Option(help="the manifest (JSON)")],
    operator: Annotated[str, typer.Option(help="the submitting operator")] = "demo-bank",
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Submit a model for review (an operator's token)."""
    import json

    document = json.loads(manifest.read_text(encoding="utf-8"))
    onnx = model.read_bytes()
    with gateway(url, token, data_dir, subject=operator, roles=("operator",)) as client:
        shown = client.submit_model(document, onnx)
    typer.echo(f"submitted {shown['id']} ({shown['digest']}): {shown['status']}, "
               f"audit entry {shown['audit']['entry']}")  # fmt: skip


@app.command("list")
def models_list(
    status: Annotated[str | None, typer.Option(help=", ".join(STATUSES))] = None,
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """List submissions (a department sees every one)."""
    with gateway(url, token, data_dir) as client:
        rows = client.models(status)
    for row in rows:
        manifest = row["manifest"]
        typer.echo(
            f"{row['id']}  {row['status']:<8}  {row['operator']:<14} {manifest['name']:<20} "
            f"{manifest['dataset']}  {', '.join(manifest['forms'])}  {row['submitted_at']}"
        )


@app.command("show")
def models_show(
    model: ModelId,
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Show a submission: manifest, the graph's summary with every weight tensor
    summarised, the leakage check run afresh on the department's rows, its review."""
    with gateway(url, token, data_dir) as client:
        echo_json(client.model(model))


@app.command("approve")
def models_approve(
    model: ModelId,
    expires: Annotated[str, typer.Option(help="until when (ISO 8601, UTC)")],
    max_runs: Annotated[int | None, typer.Option(help="runs allowed in all")] = None,
    form: Annotated[list[str] | None, typer.Option(help="a form allowed (repeat)")] = None,
    note: Annotated[str, typer.Option(help="for the record")] = "",
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Approve a pending model, with conditions (a department's token; audited)."""
    with gateway(url, token, data_dir) as client:
        shown = client.approve_model(
            model, expires=expires, max_runs=max_runs, forms=form or None, note=note
        )
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


def _close(
    done: str,
    step: Callable[[Any], dict[str, Any]],
    reason: str,
    url: str,
    token: str | None,
    data_dir: Path | None,
) -> None:
    """End a review (reject) or an approval (revoke), with the reason on the record."""
    with gateway(url, token, data_dir) as client:
        shown = step(client)
    typer.echo(f"{done} {shown['id']}: {reason}; audit entry {shown['audit']['entry']}")


@app.command("reject")
def models_reject(
    model: ModelId,
    reason: Reason,
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Reject a pending model with a reason (a department's token; audited)."""
    _close("rejected", lambda c: c.reject_model(model, reason), reason, url, token, data_dir)


@app.command("revoke")
def models_revoke(
    model: ModelId,
    reason: Reason,
    url: GatewayUrl = DEFAULT_URL,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Withdraw a model's approval with a reason (a department's token; audited)."""
    _close("revoked", lambda c: c.revoke_model(model, reason), reason, url, token, data_dir)
