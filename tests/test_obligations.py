"""Obligations bind execution even where no policy rule denies past them."""

from __future__ import annotations

import pytest

from dataauth.catalog.store import Catalog
from dataauth.domain.database import Domain, open_domain
from dataauth.errors import Problem
from dataauth.identity.keys import Keyring
from dataauth.operations.verify import Verify, VerifyCall, VerifyRequest
from dataauth.store.engine import gateway_engine

pytestmark = pytest.mark.slow


@pytest.fixture
def verify(gateway) -> Verify:
    catalog = Catalog(gateway_engine(f"sqlite:///{gateway.data_dir / 'gateway.sqlite'}"))
    domain = Domain(open_domain(f"sqlite:///{gateway.data_dir / 'demo-domain.sqlite'}"))
    return Verify(catalog, domain, Keyring(gateway.data_dir / "keys").subject_hasher(), 10_000)


def test_a_batch_over_the_obliged_limit_is_refused(verify):
    body = VerifyRequest.model_validate(
        {"purpose": "credit", "subjects": [{"key": "1", "claims": {"threshold": 3000}}] * 3}
    )
    plan = verify.describe(VerifyCall("income-at-least", body)).plan
    assert len(verify.execute(plan, {"batch_limit": 3})) == 3
    with pytest.raises(Problem) as refused:
        verify.execute(plan, {"batch_limit": 2})
    assert refused.value.status == 403 and refused.value.code == "batch_over_obligation"
