"""The exported schema.graphql matches the code, and breaks nothing the project has published.

`schema.baseline.graphql` is the API as last published, made by `make baseline`
(a deliberate release step). The API may only grow: every type, field,
argument and enum value of the baseline must still be there, with a type a
client of the baseline can still use.
"""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLNonNull, GraphQLSchema, build_schema as parse_sdl, parse, validate
from graphql.utilities import find_breaking_changes

from app.api.schema import build_schema

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "schema.baseline.graphql"


def exported() -> str:
    """The SDL the code defines, as `make schema` and `make baseline` write it."""
    return str(build_schema()).rstrip()


def breaking_changes(baseline: GraphQLSchema, current: GraphQLSchema) -> list[str]:
    """What `current` removed or changed incompatibly from `baseline`, one line each."""
    return [f"{change.type.name}: {change.description}" for change in find_breaking_changes(baseline, current)]


def test_schema_graphql_is_exported_from_the_code():
    exported_file = (ROOT / "schema.graphql").read_text().rstrip()
    assert exported_file == exported(), "schema.graphql drifted from the code: run `make schema`"


def test_the_code_keeps_every_type_field_and_argument_of_the_baseline():
    changes = breaking_changes(parse_sdl(BASELINE.read_text()), parse_sdl(exported()))
    assert changes == [], "the API may only grow; a deliberate break needs a new baseline (`make baseline`)"


def test_the_baseline_check_catches_a_removed_field():
    """The check above is only worth something if it fails: take one field of the
    baseline away from the exported schema, and it must name that field."""
    current = parse_sdl(exported())
    del current.query_type.fields["searchEvents"]
    changes = breaking_changes(parse_sdl(BASELINE.read_text()), current)
    assert changes == ["FIELD_REMOVED: Field Query.searchEvents was removed."]


def test_the_baseline_check_catches_a_removed_enum_value_and_a_narrowed_argument():
    current = parse_sdl(exported())
    del current.type_map["EventStatus"].values["SOLD_OUT"]
    first = current.query_type.fields["events"].args["first"]
    first.type = GraphQLNonNull(first.type)
    changes = breaking_changes(parse_sdl(BASELINE.read_text()), current)
    assert sorted(line.split(":")[0] for line in changes) == ["ARG_CHANGED_KIND", "VALUE_REMOVED_FROM_ENUM"], changes


def test_every_operation_document_validates_against_the_schema():
    schema = parse_sdl((ROOT / "schema.graphql").read_text())
    documents = sorted((ROOT / "graphql").rglob("*.graphql"))
    assert documents
    for path in documents:
        errors = validate(schema, parse(path.read_text()))
        assert errors == [], f"{path.name}: {errors}"
