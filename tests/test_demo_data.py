"""The demo generator: valid identifiers, unique keys, the same rows on every run."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from dataauth.domain.demo_data import (
    GUANGZHOU_DISTRICTS,
    generate_enterprises,
    generate_residents,
    is_valid_national_id,
    is_valid_uscc,
    national_id_check_digit,
    uscc_check_char,
)


def test_published_examples():
    assert is_valid_national_id("11010519491231002X")  # the GB 11643-1999 example
    assert is_valid_uscc("91350100M000100Y43")
    assert not is_valid_national_id("110105194912310021")
    assert not is_valid_national_id("11010519491331002X")  # month 13


def test_one_changed_character_is_caught():
    code = "91350100M000100Y43"
    for position in range(18):
        for replacement in "0A":
            changed = code[:position] + replacement + code[position + 1 :]
            if changed != code:
                assert not is_valid_uscc(changed)


@given(
    st.sampled_from(sorted(GUANGZHOU_DISTRICTS.values())),
    st.dates(dt.date(1900, 1, 1), dt.date(2025, 12, 31)),
    st.integers(0, 999),
)
def test_a_check_digit_completes_any_prefix(area, born, serial):
    first17 = f"{area}{born:%Y%m%d}{serial:03d}"
    assert is_valid_national_id(first17 + national_id_check_digit(first17))


def test_generated_records_are_valid_unique_and_consistent():
    residents = list(generate_residents(3000, 5))
    assert len({r["resident_id"] for r in residents}) == 3000
    for r in residents:
        assert is_valid_national_id(r["resident_id"])
        assert r["resident_id"][:6] == GUANGZHOU_DISTRICTS[r["district"]]
        assert r["resident_id"][6:14] == f"{r['birth_date']:%Y%m%d}"
        assert 2 <= len(r["name"]) <= 5 and r["monthly_income"] >= 0
    enterprises = list(generate_enterprises(2000, 5))
    assert len({e["credit_code"] for e in enterprises}) == 2000
    assert len({e["name"] for e in enterprises}) == 2000
    assert all(is_valid_uscc(e["credit_code"]) for e in enterprises)
    assert all(uscc_check_char(e["credit_code"][:17]) == e["credit_code"][17] for e in enterprises)


def test_the_same_seed_gives_the_same_rows():
    assert list(generate_residents(200, 1)) == list(generate_residents(200, 1))
    assert list(generate_residents(200, 1)) != list(generate_residents(200, 2))
    assert list(generate_enterprises(200, 1)) == list(generate_enterprises(200, 1))
