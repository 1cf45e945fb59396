"""A batch's claims are checked, and its questions hashed, once per distinct claims:
with the very answers, errors and questions of checking each subject in turn."""

from __future__ import annotations

import pytest

from dataauth.accounts.disclosure import Disclosure
from dataauth.catalog.specs import VerificationSpec
from dataauth.errors import Problem
from dataauth.identity.keys import SubjectHasher
from dataauth.operations.verify import (
    Plan,
    Verify,
    VerifyRequest,
    _all_operands,
    _asked,
    _operands,
)

FREE = VerificationSpec.model_validate(
    {
        "checks": [{"column": "monthly_income", "op": "ge", "param": "threshold"}],
        "parameters": {"threshold": {"type": "number", "minimum": -1, "maximum": 10_000}},
    }
)
# equal as dict keys, not as claims: each must be checked (and asked) as itself
CLAIMS = [5000, 5000.0, 5000, 0.0, -0.0, 1, 1.0, 7.5, 5000.0, 1]


def subjects(values: list[object]) -> list:
    body = {"purpose": "credit", "subjects": [{"key": f"k{i}", "claims": {"threshold": v}}
                                              for i, v in enumerate(values)]}  # fmt: skip
    return VerifyRequest.model_validate(body).subjects


def test_the_same_operands_as_each_subject_checked_in_turn() -> None:
    batch = subjects(CLAIMS)
    once = _all_operands(FREE, batch)
    each = [_operands(FREE, s.claims, i) for i, s in enumerate(batch)]
    assert once == each
    assert [repr(ops) for ops in once] == [repr(ops) for ops in each]  # -0.0 stays -0.0
    assert once[0] is once[2] and once[1] is once[8]  # the same claims, one list
    assert once[0] is not once[1] and once[3] is not once[4]


def test_the_first_subject_with_failing_claims_is_named() -> None:
    # true is equal to 1 and refused where 1 is not; a failure is never remembered
    with pytest.raises(Problem) as refused:
        _all_operands(FREE, subjects([1, 2, True, 1, True]))
    assert refused.value.extensions["subject"] == 2
    with pytest.raises(Problem) as refused:
        _all_operands(FREE, subjects([5000, 20_000, 5000, 20_000]))
    assert refused.value.extensions["subject"] == 1


def test_each_subject_is_asked_its_own_question() -> None:
    hasher = SubjectHasher(b"k" * 32)
    batch = subjects(CLAIMS)
    keys = [s.key for s in batch]
    plan = Plan("income", FREE, None, "", keys, _all_operands(FREE, batch))  # type: ignore[arg-type]
    told = Verify(None, None, hasher).disclosures(plan, {})  # type: ignore[arg-type]
    bits = FREE.bits()
    assert told == [
        Disclosure(hasher.person(key), hasher.question("verify", "income", _asked(ops)), bits)
        for key, ops in zip(keys, plan.claims, strict=True)
    ]
    # 5000 and 5000.0 are one question (a float either way); 7.5 and 1 are others
    assert told[0].question == told[1].question != told[7].question != told[5].question
    assert hasher.people(keys) == [hasher.person(key) for key in keys]
