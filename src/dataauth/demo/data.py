"""Deterministic synthetic registers for the Guangzhou (广州) demo domain.

Identifiers pass the real check rules: national ID numbers per GB 11643-1999 (ISO 7064
MOD 11-2), unified social credit codes per GB 32100-2015 with the GB 11714 organisation code
inside. All randomness comes from a ``random.Random`` and a ``Faker("zh_CN")`` seeded from the
caller's seed, so the same (n, seed) gives the same rows, in the same order, on every run.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from faker import Faker

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
# Resident population in ten thousands (2020 census, rounded): people and firms cluster in
# 白云, 天河 and 番禺, and a uniform spread would make district statistics meaningless.
_DISTRICT_POPULATION: dict[str, int] = {
    "荔湾区": 112,
    "越秀区": 104,
    "海珠区": 182,
    "天河区": 224,
    "白云区": 374,
    "黄埔区": 126,
    "番禺区": 266,
    "花都区": 164,
    "南沙区": 85,
    "从化区": 72,
    "增城区": 147,
}

ENTERPRISE_STATUSES: tuple[str, ...] = ("存续", "在业", "吊销", "注销", "迁出")
ACTIVE_STATUSES: frozenset[str] = frozenset(ENTERPRISE_STATUSES[:2])
_STATUS_WEIGHTS = (70, 12, 7, 9, 2)

# The day the registers describe. Fixed, so that ages and insurance months do not change with
# the day the data happens to be generated.
AS_OF = dt.date(2025, 12, 31)
_BORN_FROM, _BORN_TO = dt.date(1950, 1, 1), dt.date(2006, 12, 31)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# GB 32100 leaves out I, O, S, V and Z, so they cannot be misread as 1, 0, 5, U and 2.
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {c: i for i, c in enumerate(_USCC_CHARSET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def national_id_check_digit(first17: str) -> str:
    """The 18th character of a national ID number (GB 11643-1999, ISO 7064 MOD 11-2).

    Raises ``ValueError`` unless ``first17`` is 17 ASCII digits.
    """
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_national_id(value: str) -> bool:
    """Whether ``value`` is an 18-character national ID number that passes its checks.

    17 digits, of which 7-14 are a real calendar date, then the check character (an upper-case
    ``X`` stands for 10).
    """
    if len(value) != 18 or not (value[:17].isascii() and value[:17].isdigit()):
        return False
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return national_id_check_digit(value[:17]) == value[17]


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code (统一社会信用代码, GB 32100-2015).

    Raises ``ValueError`` unless ``first17`` is 17 characters of the code's charset.
    """
    if len(first17) != 17 or any(c not in _USCC_VALUES for c in first17):
        raise ValueError(f"expected 17 characters of {_USCC_CHARSET}, got {first17!r}")
    total = sum(_USCC_VALUES[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARSET[(31 - total % 31) % 31]


def _org_code_check_char(body: str) -> str:
    # GB 11714 values a letter by its place in the whole alphabet (A=10 ... Z=35), which is what
    # int(c, 36) gives. The GB 32100 table skips letters, so reusing it breaks J and beyond.
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def is_valid_uscc(value: str) -> bool:
    """Whether ``value`` is a unified social credit code that passes its checks.

    18 characters of the GB 32100 charset with a 6-digit area code at 3-8; characters 9-17 are
    an organisation code whose own GB 11714 check character must be right, and character 18 is
    the GB 32100 check character.
    """
    if len(value) != 18 or any(c not in _USCC_VALUES for c in value):
        return False
    if not value[2:8].isdigit():
        return False
    if _org_code_check_char(value[8:16]) != value[16]:
        return False
    return uscc_check_char(value[:17]) == value[17]


def _seeded(seed: int) -> tuple[random.Random, Faker]:
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    return random.Random(seed), fake


def _district_picker(rng: random.Random) -> Iterator[str]:
    names = list(GUANGZHOU_DISTRICTS)
    cumulative = list(itertools.accumulate(_DISTRICT_POPULATION[d] for d in names))
    while True:
        yield rng.choices(names, cum_weights=cumulative)[0]


def _months_since_18th_birthday(born: dt.date) -> int:
    months = (AS_OF.year - born.year - 18) * 12 + AS_OF.month - born.month
    if AS_OF.day < born.day:
        months -= 1
    return max(months, 0)


def generate_residents(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """Yield ``n`` residents with unique, valid national ID numbers.

    Keys: ``resident_id``, ``name``, ``birth_date``, ``district``, ``monthly_income`` (yuan),
    ``social_insurance_months`` and ``properties_owned``. Ages and months are as of ``AS_OF``.
    """
    rng, fake = _seeded(seed)
    districts = _district_picker(rng)
    property_weights = list(itertools.accumulate((40, 38, 15, 5, 1.5, 0.5)))
    seen: set[str] = set()
    while len(seen) < n:
        district = next(districts)
        born = dt.date.fromordinal(rng.randint(_BORN_FROM.toordinal(), _BORN_TO.toordinal()))
        first17 = f"{GUANGZHOU_DISTRICTS[district]}{born:%Y%m%d}{rng.randrange(1000):03d}"
        resident_id = first17 + national_id_check_digit(first17)
        if resident_id in seen:
            continue
        seen.add(resident_id)

        adult_months = _months_since_18th_birthday(born)
        retired = adult_months >= 42 * 12
        # Retired people often have no wage, and some of working age are out of work.
        if rng.random() < (0.3 if retired else 0.05):
            income = 0
        elif retired:
            income = round(rng.lognormvariate(8.3, 0.4))  # pension-like, median about 4,000
        else:
            income = round(rng.lognormvariate(8.85, 0.6))  # median about 7,000, long tail
        # Contributions stop at retirement (42 years after 18), and not every job is covered.
        insurable = min(adult_months, 42 * 12)
        insured = 0 if rng.random() < 0.08 else int(insurable * rng.betavariate(4, 2))

        yield {
            "resident_id": resident_id,
            "name": fake.name(),
            "birth_date": born,
            "district": district,
            "monthly_income": income,
            "social_insurance_months": insured,
            "properties_owned": rng.choices(range(6), cum_weights=property_weights)[0],
        }


def _credit_code(rng: random.Random, area_code: str) -> str:
    # Organisation codes issued since the 2015 reform start with "MA"; older firms kept their
    # all-digit ones.
    if rng.random() < 0.6:
        body = "MA" + "".join(rng.choices(_USCC_CHARSET, k=6))
    else:
        body = "".join(rng.choices("0123456789", k=8))
    first17 = f"91{area_code}{body}{_org_code_check_char(body)}"
    return first17 + uscc_check_char(first17)


def _company_name(fake: Faker, district: str, taken: set[str]) -> str:
    # Faker has only a few hundred zh_CN company names, so repeats are qualified the way real
    # names are: with the city, the district, or a longer trade name.
    trade, kind = fake.company_prefix(), fake.company_suffix()
    second = trade
    while second == trade:
        second = fake.company_prefix()
    for trade_name in (trade, trade + second):
        for place in ("", "广州", f"广州市{district}"):
            name = f"{place}{trade_name}{kind}"
            if name not in taken:
                return name
    # All six forms taken: rare (about 1 in 1,000 at n = 20,000). Numbered branches never run out.
    number = 1
    while (name := f"广州{trade}{kind}{district}第{number}分公司") in taken:
        number += 1
    return name


def generate_enterprises(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """Yield ``n`` enterprises with unique, valid credit codes and unique names.

    Keys: ``credit_code``, ``name``, ``status`` (one of ``ENTERPRISE_STATUSES``),
    ``registered_capital`` and ``tax_paid_last_year`` (yuan; 0 unless active), ``district``.
    """
    rng, fake = _seeded(seed)
    districts = _district_picker(rng)
    status_weights = list(itertools.accumulate(_STATUS_WEIGHTS))
    codes: set[str] = set()
    names: set[str] = set()
    while len(codes) < n:
        district = next(districts)
        code = _credit_code(rng, GUANGZHOU_DISTRICTS[district])
        if code in codes:
            continue
        codes.add(code)
        name = _company_name(fake, district, names)
        names.add(name)

        status = rng.choices(ENTERPRISE_STATUSES, cum_weights=status_weights)[0]
        # Capital is registered in round 10,000s; median about one million yuan.
        capital = max(1, round(rng.lognormvariate(13.8, 1.3) / 10_000)) * 10_000
        # Loss-making and very small active firms pay no tax either.
        if status not in ACTIVE_STATUSES or rng.random() < 0.15:
            tax = 0
        else:
            tax = round(capital * rng.uniform(0.001, 0.08))
        yield {
            "credit_code": code,
            "name": name,
            "status": status,
            "registered_capital": capital,
            "tax_paid_last_year": tax,
            "district": district,
        }


SERIAL_SHARE = 0.1
"""The share of enterprises fronted by a serial representative (职业法人)."""


def assign_representatives(
    enterprises: Iterable[dict[str, Any]], resident_ids: Sequence[str], seed: int
) -> Iterator[dict[str, Any]]:
    """Give each enterprise a legal representative (法定代表人): one of ``resident_ids``.

    Most are drawn from everyone. About one in ten comes from a small pool of serial
    representatives (one resident in 500), who front ten or so firms each, as real
    registers have them: so some residents represent several enterprises, and a group
    of firms can have many rows but few people behind them. Adds the key
    ``legal_representative_id``; the rest of each row is as given.
    """
    # a generator of its own, so the enterprises' other columns are what they always were
    rng = random.Random(f"representatives-{seed}")
    serial = rng.sample(list(resident_ids), k=max(1, len(resident_ids) // 500))
    for enterprise in enterprises:
        pool = serial if rng.random() < SERIAL_SHARE else resident_ids
        yield {**enterprise, "legal_representative_id": rng.choice(pool)}
