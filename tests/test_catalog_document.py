"""Catalog documents offline: the demo's catalog is one; what a department gets wrong is
named item by item; tables are checked against the department's database."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from dataauth.admin.catalog import database_problems
from dataauth.catalog.document import parse, problems
from dataauth.catalog.publish import as_json, export
from dataauth.demo import domain as demo
from dataauth.domain.database import open_domain
from test_audit_log import dataauth


@pytest.fixture(scope="module")
def demo_document(tmp_path_factory) -> dict:
    """The demo's catalog, registered as the demo does it and exported as a document."""
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('cat')}/gateway.sqlite")
    SQLModel.metadata.create_all(engine)
    demo.register_catalog(engine)
    content = as_json(export(engine))
    engine.dispose()
    return content


@pytest.fixture(scope="module")
def domain_url(tmp_path_factory) -> str:
    """An empty database with the demo's tables: what the checks inspect."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dom')}/domain.sqlite"
    engine = create_engine(url)
    demo.metadata.create_all(engine)
    engine.dispose()
    return url


def named(found: list[dict]) -> set[str]:
    return {p["at"] for p in found}


def test_the_demo_catalog_is_a_valid_document(demo_document, domain_url):
    document, shape = parse(demo_document)
    assert shape == [] and document is not None
    assert problems(document) == []
    assert {d.id for d in document.datasets} == {"residents", "enterprises"}
    assert len(document.products) == len(demo.PRODUCTS)
    assert [j.id for j in document.joins] == ["enterprise-representative"]
    assert len(document.licences) == len(demo.OPERATORS)
    domain = open_domain(domain_url)
    assert database_problems(document, domain) == []
    domain.dispose()


def broken(demo_document: dict) -> dict:
    """The demo's catalog with one mistake of each kind a department makes."""
    content = copy.deepcopy(demo_document)
    residents = next(d for d in content["datasets"] if d["id"] == "residents")
    columns = {c["name"]: c for c in residents["columns"]}
    columns["name"]["level"] = "L5"
    columns["district"]["uses"] = ["compare", "gossip"]
    product = next(p for p in content["products"] if p["id"] == "income-at-least")
    product["spec"]["checks"][0]["column"] = "salary"
    enterprises = next(d for d in content["datasets"] if d["id"] == "enterprises")
    enterprises["table"] = "companies"
    content["joins"][0]["right_column"] = "name"
    content["licences"][0]["products"].append("no-such-product")
    return content


def test_each_mistake_is_named(demo_document):
    document, shape = parse(broken(demo_document))
    assert shape == []
    found = problems(document)
    assert named(found) == {
        "datasets/residents/columns/name/level",
        "datasets/residents/columns/district/uses",
        "products/income-at-least/spec",
        "joins/enterprise-representative/right_column",
        f"licences/{demo_document['licences'][0]['id']}/products",
    }
    text = json.dumps(found)
    assert "'L5'" in text and "'gossip'" in text and "'salary'" in text
    assert "'no-such-product'" in text and "key column" in text


def test_a_table_or_column_not_in_the_database_or_of_another_type(demo_document, domain_url):
    content = broken(demo_document)
    residents = next(d for d in content["datasets"] if d["id"] == "residents")
    residents["columns"].append(dict(residents["columns"][0], name="nickname"))
    next(c for c in residents["columns"] if c["name"] == "district")["type"] = "integer"
    document, _ = parse(content)
    domain = open_domain(domain_url)
    found = database_problems(document, domain)
    domain.dispose()
    assert named(found) == {
        "datasets/enterprises/table",
        "datasets/residents/columns/nickname",
        "datasets/residents/columns/district/type",
    }


def test_shape_and_use_problems(demo_document):
    content = copy.deepcopy(demo_document)
    del content["datasets"][0]["key_column"]
    content["products"][0]["kind"] = "model"
    _, shape = parse(content)
    assert named(shape) == {f"datasets/{content['datasets'][0]['id']}/key_column"}

    content = copy.deepcopy(demo_document)
    content["products"][0]["kind"] = "model"  # models go through review, not the catalog
    he = next(p for p in content["products"] if p["kind"] == "he-score")
    he["spec"]["features"].append("district")  # district does not allow the feature use
    found = problems(parse(content)[0])
    assert named(found) == {
        f"products/{content['products'][0]['id']}/kind",
        f"products/{he['id']}/spec",
    }
    assert "does not allow the feature use" in json.dumps(found)


def test_a_document_names_what_it_changes(demo_document):
    """Checked over the catalog it lands on, a licence may name a product the catalog
    holds already; on its own, that product is unknown."""
    current, _ = parse(demo_document)
    licence = dict(demo_document["licences"][0], id="another", operator_id="new-lender")
    partial = {"operators": [{"id": "new-lender", "name": "N", "kind": "lender"}],
               "licences": [licence]}  # fmt: skip
    document, _ = parse(partial)
    assert problems(document, current) == []
    assert named(problems(document)) == {"licences/another/products"}


def test_the_check_command(demo_document, domain_url, tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(demo_document, ensure_ascii=False), encoding="utf-8")
    bad.write_text(json.dumps(broken(demo_document), ensure_ascii=False), encoding="utf-8")
    ok = dataauth("catalog", "check", str(good), "--domain-url", domain_url)
    assert ok.returncode == 0, ok.stderr
    assert "2 datasets" in ok.stdout and "sha256:" in ok.stdout
    failed = dataauth("catalog", "check", str(bad), "--domain-url", domain_url)
    assert failed.returncode == 1 and "catalog_invalid" in failed.stderr
    assert "joins/enterprise-representative/right_column" in failed.stderr
    assert "datasets/enterprises/table: no table 'companies'" in failed.stderr


def test_the_docs_excerpt_is_valid_over_the_demo_catalog(demo_document):
    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "departments.md").read_text(encoding="utf-8")
    section = text.split("## The catalog document", 1)[1]
    excerpt = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    document, shape = parse(excerpt)
    assert shape == []
    assert problems(document, parse(demo_document)[0]) == []
