"""A department puts a new policy bundle in force (``dataauth policy publish``)."""

from __future__ import annotations

from typing import Any

from dataauth.admin.steps import Steps
from dataauth.errors import unprocessable
from dataauth.policy.bundle import Bundle, BundleError, bundle_digest


class PolicyAdmin:
    def __init__(self, steps: Steps) -> None:
        self.steps = steps

    def publish(self, authorization: str | None, content: dict[str, Any]) -> dict[str, Any]:
        """The bundle must compile before it may be in force; the publication and its
        entry are one transaction, and this process decides by it only once both are in."""
        caller = self.steps.access.department(authorization)
        modules, data = content.get("modules"), content.get("data", {})
        if not isinstance(modules, dict) or not modules or not isinstance(data, dict):
            raise unprocessable("invalid_bundle", "a bundle is {modules: {path: rego}, data: {}}")
        bundle = Bundle(modules, data, bundle_digest(modules, data))
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
