"""Deterministic synthetic records for the demo domain (Guangzhou 广州).

Names come from Faker's zh_CN provider lists, drawn with a seeded ``random.Random``
(one Faker call per row would be five times slower). Identifiers carry real check
digits: national ID numbers per GB 11643-1999 (ISO 7064 MOD 11-2), unified social
credit codes per GB 32100-2015 with the GB 11714 organisation code inside.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

from faker.providers.company.zh_CN import Provider as CompanyProvider
from faker.providers.person.zh_CN import Provider as PersonProvider

GUANGZHOU_DISTRICTS: dict[str, str] = {
    "荔湾区": "440103",
    "越秀区": "440104",
    "海珠区": "440105",
    "天河区": "440106",
    "白云区": "440111",
    "黄埔区": "440112",
    "番禺区": "440113",
    "花都区": "440114",
    "南沙区": "440115",
    "从化区": "440117",
    "增城区": "440118",
}
# rough population weights, so that districts do not come out uniform
_DISTRICT_WEIGHTS = (11, 10, 18, 22, 37, 13, 28, 16, 9, 7, 15)

ENTERPRISE_STATUSES: tuple[str, ...] = ("存续", "在业", "吊销", "注销", "迁出")
ACTIVE_STATUSES = frozenset(ENTERPRISE_STATUSES[:2])
_STATUS_WEIGHTS = (70, 12, 7, 9, 2)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def national_id_check_digit(first17: str) -> str:
    """The 18th character of a national ID number (GB 11643-1999, ISO 7064 MOD 11-2)."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_national_id(value: str) -> bool:
    """18 characters, a real date of birth, and the right check digit."""
    if len(value) != 18 or not value[:17].isdigit() or not value[:17].isascii():
        return False
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return national_id_check_digit(value[:17]) == value[17]


def _org_check_char(body8: str) -> str:
    total = sum(_ORG_CHARSET.index(c) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code (GB 32100-2015)."""
    total = sum(_USCC_CHARSET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARSET[(31 - total % 31) % 31]


def is_valid_uscc(value: str) -> bool:
    """18 characters of the code's charset, both check characters right."""
    if len(value) != 18 or any(c not in _USCC_CHARSET for c in value):
        return False
    if not value[2:8].isdigit():
        return False
    return _org_check_char(value[8:16]) == value[16] and uscc_check_char(value[:17]) == value[17]


def _choose_district(rng: random.Random) -> str:
    return rng.choices(list(GUANGZHOU_DISTRICTS), weights=_DISTRICT_WEIGHTS)[0]


def generate_residents(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """``n`` residents with unique, valid national ID numbers."""
    rng = random.Random(seed)
    surnames = list(PersonProvider.last_names)
    surname_weights = list(PersonProvider.last_names.values())
    given = PersonProvider.first_names
    epoch, span = dt.date(1950, 1, 1), (dt.date(2006, 12, 31) - dt.date(1950, 1, 1)).days
    today = dt.date(2026, 11, 1)
    seen: set[str] = set()
    while len(seen) < n:
        district = _choose_district(rng)
        born = epoch + dt.timedelta(days=rng.randrange(span + 1))
        first17 = f"{GUANGZHOU_DISTRICTS[district]}{born:%Y%m%d}{rng.randrange(1000):03d}"
        resident_id = first17 + national_id_check_digit(first17)
        if resident_id in seen:
            continue
        seen.add(resident_id)
        age = (today - born).days // 365
        working_months = max(0, (min(age, 60) - 18) * 12)
        retired_or_idle = age >= 63 or rng.random() < 0.06
        income = 0 if retired_or_idle and rng.random() < 0.5 else int(rng.lognormvariate(8.9, 0.6))
        name = rng.choices(surnames, weights=surname_weights)[0] + "".join(
            rng.choice(given) for _ in range(rng.choice((1, 2, 2)))
        )
        yield {
            "resident_id": resident_id,
            "name": name,
            "birth_date": born,
            "district": district,
            "monthly_income": income,
            "social_insurance_months": int(working_months * rng.betavariate(4, 2)),
            "properties_owned": rng.choices(range(6), weights=(38, 40, 15, 5, 1.5, 0.5))[0],
        }


def generate_enterprises(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """``n`` enterprises with unique, valid unified social credit codes and unique names."""
    rng = random.Random(seed + 1)
    prefixes, suffixes = CompanyProvider.company_prefixes, CompanyProvider.company_suffixes
    codes: set[str] = set()
    names: set[str] = set()
    while len(codes) < n:
        district = _choose_district(rng)
        body = "".join(rng.choice(_ORG_CHARSET) for _ in range(8))
        first17 = f"91{GUANGZHOU_DISTRICTS[district]}{body}{_org_check_char(body)}"
        code = first17 + uscc_check_char(first17)
        if code in codes:
            continue
        name = f"广州{rng.choice(prefixes)}{rng.choice(suffixes)}"
        if name in names:
            name = f"广州{rng.choice(prefixes)}{rng.choice(prefixes)}{rng.choice(suffixes)}"
        if name in names:
            name = f"{name[:-4]}（{district[:-1]}）{name[-4:]}"
        if name in names:
            continue
        codes.add(code)
        names.add(name)
        status = rng.choices(ENTERPRISE_STATUSES, weights=_STATUS_WEIGHTS)[0]
        capital = int(rng.lognormvariate(13.5, 1.4)) // 10_000 * 10_000
        active = status in ACTIVE_STATUSES
        yield {
            "credit_code": code,
            "name": name,
            "status": status,
            "registered_capital": capital,
            "tax_paid_last_year": int(capital * rng.uniform(0.0, 0.08)) if active else 0,
            "district": district,
        }
