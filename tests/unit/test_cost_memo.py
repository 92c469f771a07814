"""An operation's cost is counted once per set of list sizes (app/api/cost.py `OperationCosts`)."""

from __future__ import annotations

from graphql import FragmentDefinitionNode, get_operation_ast, parse

from app.api import cost
from app.api.schema import build_schema

SCHEMA = build_schema()._schema


def _costs(query: str) -> cost.OperationCosts:
    document = parse(query)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return cost.OperationCosts(SCHEMA, get_operation_ast(document, "Q"), fragments)


def test_the_cost_follows_the_size_variables_and_is_counted_once_for_each(monkeypatch):
    counted = []
    original = cost.operation_cost
    monkeypatch.setattr(cost, "operation_cost", lambda *args: counted.append(args[-1]) or original(*args))
    costs = _costs("query Q($q: String!, $n: Int, $id: ID!) { searchEvents(query: $q, limit: $n) { id venue { name } }"
                   " event(id: $id) { id } }")
    small, large = costs({"q": "rock", "n": 5, "id": "a"}), costs({"q": "rock", "n": 50, "id": "a"})
    assert large > small
    assert (small, large) == (original(*costs._counted, {"n": 5}), original(*costs._counted, {"n": 50}))
    counted.clear()
    # Another search word or another id does not change the cost: remembered, not counted again.
    assert costs({"q": "jazz", "n": 5, "id": "b"}) == small and costs({"q": "pop", "n": 50, "id": "c"}) == large
    assert counted == []


def test_size_variables_are_found_in_fragments_and_connections():
    costs = _costs("query Q($first: Int, $n: Int) { events(first: $first) { edges { node { ...F } } } }"
                   " fragment F on Event { ticketTypes { id } } query R($n: Int) { searchEvents(query: \"x\", limit: $n) { id } }")
    assert costs._sizing == ["first"]
    assert costs({"first": 1}) < costs({"first": 20})


def test_a_document_without_size_variables_has_one_cost():
    costs = _costs("query Q($id: ID!) { event(id: $id) { id ticketTypes { id } } }")
    assert costs._sizing == []
    assert costs({"id": "a"}) == costs({"id": "b"}) == costs(None)
