"""The exported schema.graphql matches the code, and keeps the whole public contract."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema as parse_sdl
from graphql.utilities import find_breaking_changes

from app.api.schema import build_schema

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT.parent / "shared" / "contract" / "contract.graphql"


def test_schema_graphql_is_exported_from_the_code():
    exported = (ROOT / "schema.graphql").read_text().rstrip()
    assert exported == str(build_schema()).rstrip(), "schema.graphql drifted from the code: run `make schema`"


def test_schema_keeps_every_type_field_and_argument_of_the_contract():
    contract = parse_sdl(CONTRACT.read_text())
    ours = parse_sdl((ROOT / "schema.graphql").read_text())
    assert find_breaking_changes(contract, ours) == []


def test_every_operation_document_validates_against_the_schema():
    from graphql import parse, validate

    schema = parse_sdl((ROOT / "schema.graphql").read_text())
    documents = sorted((ROOT / "graphql").rglob("*.graphql"))
    assert documents
    for path in documents:
        errors = validate(schema, parse(path.read_text()))
        assert errors == [], f"{path.name}: {errors}"
