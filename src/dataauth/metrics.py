"""Prometheus metrics: requests, decisions by outcome, latency, and the audit log's lag.

Labels are route templates, operation kinds and outcomes: never a path as sent, a
subject or a value. With several workers (``serve --workers``) each writes its samples
to ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker sums them all.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from dataauth.audit.ledger import Ledger

REQUESTS = Counter("dataauth_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "dataauth_request_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISIONS = Counter(
    "dataauth_decisions",
    "Requests down the spine, by operation kind and outcome "
    "(released, denied, limited, refused, failed)",
    ["kind", "outcome"],
)


# each metric's child for a set of labels, looked up once: ``labels`` takes a lock and
# checks its labels on every call, and every request counts itself twice. The method is
# the client's word, so the requests' cache is bounded (it then looks up again).
@lru_cache(maxsize=1024)
def request_series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter's and the latency histogram's children for a request."""
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(route)


@lru_cache(maxsize=256)
def decisions(kind: str, outcome: str) -> Any:
    """The decisions counter's child for a kind and outcome."""
    return DECISIONS.labels(kind, outcome)


class AuditLag:
    """Read at each scrape from the database, so every worker reports the same log."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self):  # type: ignore[no-untyped-def]  (prometheus_client's collector protocol)
        size = self.ledger.size()
        head = self.ledger.latest_head()
        covered = head.size if head else 0
        yield GaugeMetricFamily("dataauth_audit_entries", "Entries in the audit log", size)
        yield GaugeMetricFamily(
            "dataauth_audit_unsigned_entries",
            "Entries no signed tree head covers yet",
            size - covered,
        )
        if head is not None:
            signed = datetime.fromisoformat(head.time.replace("Z", "+00:00"))
            yield GaugeMetricFamily(
                "dataauth_audit_head_age_seconds",
                "Seconds since the latest tree head was signed",
                max(0.0, (datetime.now(UTC) - signed).total_seconds()),
            )


def exposition(ledger: Ledger) -> bytes:
    """The text exposition of every metric, this process's or all workers'."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (REQUESTS, LATENCY, DECISIONS):
            registry.register(metric)
    registry.register(AuditLag(ledger))
    return generate_latest(registry)
