"""The demo catalog: how the demo department classifies its columns (分类分级), the
products it publishes, the join it declares, and the operators it licenses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# (name, title, type, level, uses): the classification (分类分级) of every column
RESIDENT_COLUMNS = [
    ("resident_id", "公民身份号码 national ID number", "string", "L4", ["key"]),
    ("name", "姓名 name", "string", "L3", ["compare"]),
    ("birth_date", "出生日期 birth date", "date", "L3", ["compare", "aggregate", "feature"]),
    ("district", "户籍区 district", "string", "L2", ["compare", "aggregate", "plaintext"]),
    (
        "monthly_income",
        "月收入 monthly income",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
    (
        "social_insurance_months",
        "社保缴纳月数 months of social insurance paid",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
    (
        "properties_owned",
        "房产数 properties owned",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
]
ENTERPRISE_COLUMNS = [
    (
        "credit_code",
        "统一社会信用代码 unified social credit code",
        "string",
        "L1",
        ["key", "plaintext"],
    ),
    ("name", "企业名称 name", "string", "L1", ["compare", "plaintext"]),
    (
        "status",
        "登记状态 registration status",
        "string",
        "L1",
        ["compare", "aggregate", "plaintext"],
    ),
    (
        "registered_capital",
        "注册资本 registered capital",
        "integer",
        "L2",
        ["compare", "aggregate", "feature", "plaintext"],
    ),
    (
        "tax_paid_last_year",
        "上年纳税额 tax paid last year",
        "integer",
        "L3",
        ["compare", "aggregate", "feature"],
    ),
    ("district", "登记区 district", "string", "L1", ["compare", "aggregate", "plaintext"]),
    (
        "legal_representative_id",
        "法定代表人公民身份号码 legal representative's national ID number",
        "string",
        "L4",
        ["key"],
    ),
]

# joins a department declares (可关联): each left row meets at most one right row, on the
# right dataset's key. Queries may join these and no others.
JOINS: list[dict[str, Any]] = [
    {
        "id": "enterprise-representative",
        "title": "企业法定代表人 Enterprises and their legal representatives",
        "left_dataset": "enterprises",
        "left_column": "legal_representative_id",
        "right_dataset": "residents",
        "right_column": "resident_id",
        # a serial representative's firms count at most five times in a noised answer
        "max_per_right": 5,
    },
]

# [low, high] of numeric columns: contributions to a noisy sum or mean are clamped to
# these, and the noise is scaled to them (a wider range, more noise)
BOUNDS: dict[tuple[str, str], list[float]] = {
    ("residents", "monthly_income"): [0, 50_000],
    ("residents", "social_insurance_months"): [0, 600],
    ("residents", "properties_owned"): [0, 10],
    ("enterprises", "registered_capital"): [0, 100_000_000],
    ("enterprises", "tax_paid_last_year"): [0, 5_000_000],
}

PRODUCTS: list[dict[str, Any]] = [
    {
        "id": "identity-match",
        "title": "身份核验 Does the ID number belong to the named person?",
        "dataset": "residents",
        "spec": {
            "checks": [{"column": "name", "op": "eq", "param": "name"}],
            "parameters": {"name": {"type": "string", "description": "the name given"}},
            "not_found": "false",
        },
    },
    {
        "id": "income-at-least",
        "title": "收入核验 Is the monthly income at least the threshold?",
        "dataset": "residents",
        "spec": {
            "checks": [{"column": "monthly_income", "op": "ge", "param": "threshold"}],
            "parameters": {
                "threshold": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 10_000_000,
                    "description": "yuan per month: one of the department's cut points",
                    # the department's choice: whatever is asked, income is told no
                    # finer than these six intervals (log2 6 = 2.6 bits a resident)
                    "one_of": [3000, 5000, 8000, 12000, 20000],
                }
            },
            "not_found": "false",
        },
    },
    {
        "id": "social-insurance-at-least",
        "title": "社保核验 Has social insurance been paid for at least N months?",
        "dataset": "residents",
        "spec": {
            "checks": [{"column": "social_insurance_months", "op": "ge", "param": "threshold"}],
            "parameters": {
                "threshold": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 1200,
                    "description": "months: one of the department's cut points",
                    "one_of": [6, 12, 24, 36, 60, 120, 180],
                }
            },
            "not_found": "false",
        },
    },
    {
        "id": "income-band",
        "title": "收入区间 Which band is the monthly income in?",
        "dataset": "residents",
        "spec": {
            "answer": {
                "form": "band",
                "column": "monthly_income",
                "cuts": [3000, 8000, 20000],
                "labels": ["below 3000", "3000 to 7999", "8000 to 19999", "20000 or more"],
            },
            "consent": True,
            "not_found": "explicit",
        },
    },
    {
        "id": "enterprise-active",
        "title": "企业存续核验 Is the enterprise active (存续/在业)?",
        "dataset": "enterprises",
        "spec": {
            "checks": [{"column": "status", "op": "in", "value": ["存续", "在业"]}],
            "not_found": "explicit",
        },
    },
    {
        "id": "he-credit-score",
        "kind": "he-score",
        "title": "密态评分 Encrypted scoring with the operator's own model (weights stay secret)",
        "dataset": "residents",
        "spec": {
            "features": ["monthly_income", "social_insurance_months", "properties_owned"],
            "cohort_columns": ["district"],
            "consent": True,
        },
    },
]

QUERIES = ["query:residents", "query:enterprises"]
"""Aggregate queries are licensed per dataset, as ``query:<dataset>`` in a licence's
products (like a product; there is no Product row for them)."""
ALL_PRODUCTS = [p["id"] for p in PRODUCTS] + QUERIES
OPERATORS: list[dict[str, Any]] = [
    {
        "id": "demo-bank",
        "name": "示范银行 Demo Bank",
        "kind": "bank",
        "products": ALL_PRODUCTS,
        "purposes": ["credit", "account-opening"],
        "valid": (datetime(2026, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
    },
    {
        "id": "demo-insurer",
        "name": "示范保险 Demo Insurer",
        "kind": "insurer",
        "products": ["identity-match", "social-insurance-at-least"],
        "purposes": ["underwriting"],
        "valid": (datetime(2026, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
        "limits": {"daily_quota": 10000},
    },
    {
        "id": "demo-expired",
        "name": "示范征信 Demo Credit Bureau (licence expired)",
        "kind": "credit-bureau",
        "products": ALL_PRODUCTS,
        "purposes": ["credit"],
        "valid": (datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    },
    {
        "id": "demo-revoked",
        "name": "示范小贷 Demo Lender (licence revoked)",
        "kind": "lender",
        "products": ALL_PRODUCTS,
        "purposes": ["credit"],
        "valid": (datetime(2026, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
        "revoked_at": datetime(2026, 6, 1, tzinfo=UTC),
    },
]
