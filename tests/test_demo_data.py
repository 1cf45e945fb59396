"""The demo generator: identifiers pass the real check rules, keys are unique, rows repeat."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataauth.demo import domain as demo
from dataauth.demo.data import (
    AS_OF,
    ENTERPRISE_STATUSES,
    GUANGZHOU_DISTRICTS,
    assign_representatives,
    generate_enterprises,
    generate_residents,
    is_valid_national_id,
    is_valid_uscc,
    national_id_check_digit,
    uscc_check_char,
)

GB11643_EXAMPLE = "11010519491231002X"  # the example printed in GB 11643-1999
GB32100_EXAMPLE = "91350100M000100Y43"  # the widely cited GB 32100-2015 example
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def single_changes(value: str, alphabet: str):
    for position, original in enumerate(value):
        for replacement in alphabet:
            if replacement != original:
                yield value[:position] + replacement + value[position + 1 :]


def test_gb11643_example():
    assert national_id_check_digit(GB11643_EXAMPLE[:17]) == "X"
    assert is_valid_national_id(GB11643_EXAMPLE)


def test_any_single_changed_character_of_a_national_id_is_rejected():
    for changed in single_changes(GB11643_EXAMPLE, "0123456789X"):
        assert not is_valid_national_id(changed), changed


def test_national_id_shape_and_date_are_checked():
    assert not is_valid_national_id(GB11643_EXAMPLE.lower())
    assert not is_valid_national_id(GB11643_EXAMPLE[:17])
    assert not is_valid_national_id(GB11643_EXAMPLE + "0")
    assert not is_valid_national_id("１１０１０５１９４９１２３１００２X")  # full-width digits
    # Each of these has the right check digit, so only the date can fail it.
    assert is_valid_national_id("440106194802290016")  # 1948 was a leap year
    for first17 in ("44010619490229001", "44010619491301001", "44010619490000001"):
        assert not is_valid_national_id(first17 + national_id_check_digit(first17))


def test_check_functions_refuse_malformed_prefixes():
    for bad in ("1101051949123100", "1101051949123100X", "110105194912310021"):
        with pytest.raises(ValueError):
            national_id_check_digit(bad)
    for bad in ("91350100M000100Y", "91350100M000100YI", "91350100M000100Y43"):
        with pytest.raises(ValueError):
            uscc_check_char(bad)


def test_gb32100_example():
    assert uscc_check_char(GB32100_EXAMPLE[:17]) == "3"
    assert is_valid_uscc(GB32100_EXAMPLE)


def test_any_single_changed_character_of_a_credit_code_is_rejected():
    # 31 is prime and no weight is a multiple of it, so every substitution shifts the sum.
    for changed in single_changes(GB32100_EXAMPLE, USCC_CHARSET + "IOSVZa-"):
        assert not is_valid_uscc(changed), changed


def test_the_organisation_code_uses_gb11714_letter_values():
    # GB 11714 values letters by alphabet position (M=22, A=10, D=13):
    # 22*3 + 10*7 + 5*9 + 13*10 + 6*5 + 9*8 + 3*4 + 22*2 = 469, 469 % 11 = 7, 11 - 7 = 4.
    # The GB 32100 table (M=21) would give 9 instead.
    assert is_valid_uscc("91440106MA5D693M41")
    first17 = "91440106MA5D693M9"
    assert not is_valid_uscc(first17 + uscc_check_char(first17))


def test_the_organisation_check_maps_10_to_x_and_11_to_0():
    # "00000006": 6*2 = 12, 11 - 1 = 10 -> X; "00000000": 11 - 0 = 11 -> 0
    for good, bad in (("00000006X", "000000060"), ("000000000", "00000000X")):
        good17, bad17 = f"91440106{good}", f"91440106{bad}"
        assert is_valid_uscc(good17 + uscc_check_char(good17))
        # The final character alone being right does not save a wrong organisation check.
        assert not is_valid_uscc(bad17 + uscc_check_char(bad17))


@given(
    st.text("0123456789", min_size=6, max_size=6),
    st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)),
    st.integers(0, 999),
)
def test_a_check_digit_completes_any_valid_prefix(area, born, serial):
    first17 = f"{area}{born:%Y%m%d}{serial:03d}"
    assert is_valid_national_id(first17 + national_id_check_digit(first17))


def test_generated_residents_are_valid_unique_and_consistent():
    residents = list(generate_residents(3000, 5))
    assert len(residents) == 3000
    assert len({r["resident_id"] for r in residents}) == 3000
    for r in residents:
        rid, born = r["resident_id"], r["birth_date"]
        assert is_valid_national_id(rid), rid
        assert rid[:6] == GUANGZHOU_DISTRICTS[r["district"]]
        assert rid[6:14] == f"{born:%Y%m%d}"
        assert dt.date(1950, 1, 1) <= born <= dt.date(2006, 12, 31)
        assert 2 <= len(r["name"]) <= 4 and all("\u4e00" <= c <= "\u9fff" for c in r["name"])
        assert r["monthly_income"] >= 0
        months_since_18 = (AS_OF.year - born.year - 18) * 12 + AS_OF.month - born.month
        assert 0 <= r["social_insurance_months"] <= months_since_18
        assert 0 <= r["properties_owned"] <= 5
    incomes = sorted(r["monthly_income"] for r in residents)
    assert 4000 <= incomes[len(incomes) // 2] <= 9000
    assert incomes[-1] > 4 * incomes[len(incomes) // 2]  # a long tail
    assert {r["district"] for r in residents} == set(GUANGZHOU_DISTRICTS)


def test_generated_enterprises_are_valid_unique_and_consistent():
    enterprises = list(generate_enterprises(3000, 5))
    assert len(enterprises) == 3000
    assert len({e["credit_code"] for e in enterprises}) == 3000
    assert len({e["name"] for e in enterprises}) == 3000
    for e in enterprises:
        code = e["credit_code"]
        assert is_valid_uscc(code), code
        assert code[:2] == "91" and code[2:8] == GUANGZHOU_DISTRICTS[e["district"]]
        assert e["status"] in ENTERPRISE_STATUSES
        assert e["registered_capital"] > 0
        assert e["tax_paid_last_year"] >= 0
        if e["status"] not in ENTERPRISE_STATUSES[:2]:
            assert e["tax_paid_last_year"] == 0
    active = sum(e["status"] in ENTERPRISE_STATUSES[:2] for e in enterprises)
    assert len(enterprises) // 2 < active < len(enterprises)


def test_the_same_seed_gives_the_same_rows_and_another_seed_others():
    assert list(generate_residents(300, 1)) == list(generate_residents(300, 1))
    assert list(generate_enterprises(300, 1)) == list(generate_enterprises(300, 1))
    assert list(generate_residents(300, 1)) != list(generate_residents(300, 2))
    assert list(generate_enterprises(300, 1)) != list(generate_enterprises(300, 2))
    # A shorter run is a prefix of a longer one, so n does not reshuffle the rows.
    assert list(generate_residents(100, 1)) == list(generate_residents(300, 1))[:100]


DIGEST = """
import hashlib
from dataauth.demo.data import generate_enterprises, generate_residents
rows = [*generate_residents(300, 7), *generate_enterprises(300, 7)]
print(hashlib.sha256(repr(rows).encode()).hexdigest())
"""


def test_another_process_with_another_hash_seed_gives_the_same_rows():
    rows = [*generate_residents(300, 7), *generate_enterprises(300, 7)]
    here = hashlib.sha256(repr(rows).encode()).hexdigest()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", DIGEST], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == here


def test_representatives_are_residents_and_some_represent_several_firms():
    ids = [r["resident_id"] for r in generate_residents(2000, 3)]
    firms = list(assign_representatives(generate_enterprises(600, 3), ids, 3))
    assert firms == list(assign_representatives(generate_enterprises(600, 3), ids, 3))
    # the firms' other columns are what they were before they had representatives
    unchanged = [{k: v for k, v in f.items() if k != "legal_representative_id"} for f in firms]
    assert unchanged == list(generate_enterprises(600, 3))
    represented = Counter(f["legal_representative_id"] for f in firms)
    assert set(represented) <= set(ids)
    assert max(represented.values()) >= 5  # serial representatives (职业法人)
    assert sum(n == 1 for n in represented.values()) > len(represented) // 2


def test_a_demo_database_of_another_revision_is_made_again(tmp_path):
    path = tmp_path / "demo-domain.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE applicants (applicant_id TEXT PRIMARY KEY)")
    assert not demo.is_stale(path)  # not a demo database: someone else's, left alone
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE residents (resident_id TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE enterprises (credit_code TEXT PRIMARY KEY)")
        db.execute(f"PRAGMA user_version = {demo.REVISION - 1}")
    assert demo.is_stale(path)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {demo.REVISION}")
    assert not demo.is_stale(path)
