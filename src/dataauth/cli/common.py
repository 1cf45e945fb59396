"""What the command groups share: options, settings, refusals, progress, the gateway."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from dataauth.identity import keys

if TYPE_CHECKING:
    from dataauth.config import Settings
    from dataauth.sdk.client import Client

SHOWN_DEFAULTS = {"data_dir": ".dataauth", "host": "127.0.0.1", "port": "8080"}
"""Settings' defaults, as help shows them without reading the settings: importing them
(pydantic-settings) would cost every ``--help`` a tenth of a second. tests/test_cli.py
holds these to ``Settings``' own."""
DEFAULT_URL = f"http://{SHOWN_DEFAULTS['host']}:{SHOWN_DEFAULTS['port']}"

# rich reads "[...]" as markup: the brackets of the hints are escaped to be shown
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="gateway database, keys and demo domain \\[env DATAAUTH_DATA_DIR]",
        show_default=SHOWN_DEFAULTS["data_dir"],
    ),
]
GatewayUrl = Annotated[str, typer.Option("--url", help="the gateway")]
Token = Annotated[str | None, typer.Option(help="a token (default: the development issuer's)")]

DEV_ISSUER_KEY = f"keys/{keys.DEV_ISSUER}"
DEV_CONSENT_KEY = f"keys/{keys.DEV_CONSENT_ISSUER}"
DEV_KEYS = (DEV_ISSUER_KEY, DEV_CONSENT_KEY)
SUBJECT_KEY = f"keys/{keys.SUBJECT_SECRET}"
SQLITE_DATABASE = "gateway.sqlite"


def load_settings(data_dir: Path | None, **overrides: object) -> Settings:
    from dataauth.config import Settings

    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def refuse(message: str) -> NoReturn:
    """The command cannot run as asked (exit 2): a usage problem, not a failure."""
    typer.echo(message, err=True)
    raise typer.Exit(2)


def require_gateway(settings: Settings, *needed: str) -> None:
    """Refuse unless the data directory holds what ``dataauth serve`` made there. A
    command must not make one: keys generated afresh would mint tokens no gateway
    trusts, and an empty database has nothing to export."""
    where = settings.data_dir.absolute()
    point = (
        "name a gateway's data directory with --data-dir or DATAAUTH_DATA_DIR "
        f"({SHOWN_DEFAULTS['data_dir']} by default), or start a gateway there with "
        "`dataauth serve`"
    )
    if not settings.data_dir.is_dir():
        refuse(f"no gateway data directory at {where}; {point}")
    for name in needed:
        if (settings.data_dir / name).exists():
            continue
        if name in DEV_KEYS and (settings.data_dir / SUBJECT_KEY).exists():
            refuse(
                f"the gateway in {where} does not trust the development issuers (no {name} "
                "in it): it was started with real ones, whose tokens to give instead"
            )
        refuse(f"{where} holds no gateway (no {name} in it); {point}")


def gateway_database(settings: Settings) -> str:
    """The gateway database's URL: DATAAUTH_DATABASE_URL, or the data directory's SQLite
    file, which must be there already."""
    if settings.database_url is None:
        require_gateway(settings, SQLITE_DATABASE)
    return settings.gateway_url


def development_token(
    settings: Settings, subject: str, roles: tuple[str, ...], ttl_seconds: int
) -> str:
    """A token from the development issuer whose key the gateway generated."""
    from dataauth.identity.dev_issuer import issue_token
    from dataauth.identity.keys import Keyring

    require_gateway(settings, DEV_ISSUER_KEY)
    return issue_token(
        Keyring(settings.keys_dir),
        subject=subject,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=ttl_seconds,
        roles=roles,
    )


def bearer(
    token: str | None,
    data_dir: Path | None,
    subject: str = "demo-department",
    roles: tuple[str, ...] = ("department",),
) -> str:
    """The token given, or a short one from the development issuer (a department's by
    default); with a real issuer configured, a token must be given."""
    if token is not None:
        return token
    settings = load_settings(data_dir)
    if not settings.development_issuer:
        refuse("give --token: a token from your issuer")
    return development_token(settings, subject, roles, 300)


@contextmanager
def gateway(
    url: str,
    token: str | None,
    data_dir: Path | None,
    *,
    subject: str = "demo-department",
    roles: tuple[str, ...] = ("department",),
    brief: bool = False,
) -> Iterator[Client]:
    """A client of the gateway with a token (see ``bearer``); a refusal or no answer ends
    the command with what the gateway said (only its detail when ``brief``)."""
    from dataauth.sdk.client import Client, GatewayError, GatewayUnreachable

    with Client(url, bearer(token, data_dir, subject, roles)) as client:
        try:
            yield client
        except GatewayUnreachable as exc:
            fail(f"FAILED: cannot reach the gateway at {url}: {exc}")
        except GatewayError as exc:
            if brief:
                fail(f"FAILED: {exc.detail}")
            code = exc.problem.get("code", exc.status)
            fail(f"FAILED ({code}): {exc.detail}{listed(exc.errors, exc.detail)}")


def described(item: Any) -> str:
    """One error or warning, where and what, whatever its shape: a catalog's (``at``,
    ``message``), the gateway's request validation (``loc``, ``message``), FastAPI's
    own (``loc``, ``msg``); anything else as JSON."""
    if isinstance(item, dict):
        where = item.get("at", item.get("loc"))
        if isinstance(where, list | tuple):
            where = ".".join(str(part) for part in where)
        what = item.get("message", item.get("msg"))
        if what is not None:
            return f"{where}: {what}" if where else str(what)
    return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)


def listed(errors: list[Any], detail: str | None = None) -> str:
    """A problem's errors, one a line, each where it is and what is wrong; none where the
    detail already says all (a problem of one error names it)."""
    lines = [described(e) for e in errors]
    if detail is not None and lines == [detail]:
        return ""
    return "".join(f"\n  {line}" for line in lines)


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
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
