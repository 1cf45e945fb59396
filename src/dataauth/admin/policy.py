"""A department puts a new policy bundle in force (``dataauth policy publish``), and
looks first: the bundle in force, and a candidate's what-if over the recorded traffic."""

from __future__ import annotations

from typing import Any

from dataauth.admin.steps import Steps
from dataauth.config import POLICY_ENGINE
from dataauth.errors import unprocessable
from dataauth.policy.bundle import Bundle, BundleError, bundle_digest
from dataauth.policy.store import load_stored_bundle
from dataauth.policy.whatif import whatif


def _candidate(content: dict[str, Any]) -> Bundle:
    modules, data = content.get("modules"), content.get("data", {})
    if not isinstance(modules, dict) or not modules or not isinstance(data, dict):
        raise unprocessable("invalid_bundle", "a bundle is {modules: {path: rego}, data: {}}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in modules.items()):
        raise unprocessable("invalid_bundle", "each module is a path and its Rego as text")
    return Bundle(modules, data, bundle_digest(modules, data))


class PolicyAdmin:
    def __init__(self, steps: Steps, engine_name: str = POLICY_ENGINE) -> None:
        self.steps = steps
        self.engine_name = engine_name

    def publish(self, authorization: str | None, content: dict[str, Any]) -> dict[str, Any]:
        """The bundle must compile before it may be in force; the publication and its
        entry are one transaction, and this process decides by it only once both are in."""
        caller = self.steps.access.department(authorization)
        bundle = _candidate(content)
        policy = self.steps.policy
        try:
            engine = policy.make_engine(bundle)
        except BundleError as exc:
            raise unprocessable("invalid_bundle", str(exc)) from None
        previous, receipt = self.steps.take(
            caller.subject,
            lambda connection: policy.record_publication(connection, bundle, caller.subject),
            {"kind": "policy-publish", "new": bundle.digest},
            found=lambda previous: {"previous": previous},
            purpose="policy-administration",
            request=bundle.digest.encode(),
            outcome="published",
            bundle=bundle.digest,
        )
        policy.adopt(engine)
        return {"previous": previous, "digest": bundle.digest, "audit": receipt.as_dict()}

    def in_force(self, authorization: str | None) -> dict[str, Any]:
        """The bundle in force, whole (a department's token): what a candidate starts from."""
        self.steps.access.department(authorization)
        digest = self.steps.policy.engine().digest
        return {"digest": digest, **load_stored_bundle(self.steps.policy.db, digest).content()}

    def whatif(
        self,
        authorization: str | None,
        content: dict[str, Any],
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        """``dataauth policy whatif`` over HTTP: the recorded decisions a candidate would
        change. A dry run that changes nothing, so it is not an audit entry."""
        self.steps.access.department(authorization)
        bundle = _candidate(content)
        try:
            return whatif(self.steps.policy.db, bundle, since, until, engine_name=self.engine_name)
        except BundleError as exc:
            raise unprocessable("invalid_bundle", str(exc)) from None
