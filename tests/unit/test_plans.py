"""Query plans answer what graphql-core answers, or leave the query to it (app/api/plans.py)."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any

import pytest
import strawberry
from graphql import get_operation_ast, parse
from strawberry.dataloader import DataLoader

from app.api import plans
from app.api.execution import Executor
from app.api.schema import Schema


@strawberry.enum
class Kind(enum.Enum):
    GIG = "gig"
    TALK = "talk"


@strawberry.type
class Seat:
    row: str
    number: int


@strawberry.type
class Show:
    id: strawberry.ID
    title: str
    kind: Kind
    note: str | None
    seats: list[Seat]
    host: Seat | None

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        if times < 0:
            raise ValueError("times must not be negative")
        return self.title.upper() * times

    @strawberry.field
    async def sold(self, info: strawberry.Info) -> int:
        return await info.context["sold"].load(str(self.id))

    @strawberry.field
    def broken(self) -> int:
        return None  # type: ignore[return-value] - a resolver that breaks its type's promise


@strawberry.type
class Stage:
    name: str


@strawberry.type
class Hall:
    name: str


Place = Annotated[Stage | Hall, strawberry.union("Place")]


def make_show(n: int, **changes: Any) -> Show:
    values = {"id": f"s{n}", "title": f"show {n}", "kind": Kind.GIG if n % 2 else Kind.TALK, "note": None,
              "seats": [Seat(row="A", number=i) for i in range(2)], "host": Seat(row="H", number=n) if n % 2 else None}
    return Show(**values | changes)


CALLS: list[str] = []


@strawberry.type
class Query:
    @strawberry.field
    async def shows(self, first: int = 3) -> list[Show]:
        CALLS.append("shows")
        return [make_show(n) for n in range(first)]

    @strawberry.field
    def show(self, id: strawberry.ID) -> Show | None:
        CALLS.append("show")
        if id == "broken-title":
            return make_show(0, title=None)
        if id == "raises":
            raise ValueError("no such show")
        return make_show(int(id)) if id.isdigit() else None

    @strawberry.field
    def echo(self, words: list[str], kind: Kind = Kind.GIG) -> str:
        return f"{kind.name}: {' '.join(words)}"

    @strawberry.field
    def place(self) -> Place:
        return Stage(name="main")


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> int:
        return 1


def make_schema() -> Schema:
    return Schema(query=Query, mutation=Mutation, execution_context_class=Executor, fast_rules=[])


def context() -> dict[str, Any]:
    loads: list[list[str]] = []

    async def sold(keys: list[str]) -> list[int]:
        loads.append(list(keys))
        return [int(k[1:]) * 10 for k in keys]

    return {"sold": DataLoader(load_fn=sold), "loads": loads}


async def answers(query: str, variables: dict[str, Any] | None = None, monkeypatch=None) -> tuple[Any, Any, list]:
    """The answer with plans, and graphql-core's answer to the same request (plans turned off)."""
    schema = make_schema()
    ours = await schema.execute(query, variables, context())
    real_run = plans.QueryPlan.run

    async def no_plan(*_args: Any) -> None:
        return None

    monkeypatch.setattr(plans.QueryPlan, "run", no_plan)
    theirs = await schema.execute(query, variables, context())
    monkeypatch.setattr(plans.QueryPlan, "run", real_run)
    return ours, theirs, schema._prepared(query, None)


def same(ours: Any, theirs: Any) -> None:
    assert json.dumps(ours.data) == json.dumps(theirs.data)  # key order too
    assert [(e.message, e.path) for e in ours.errors or []] == [(e.message, e.path) for e in theirs.errors or []]


QUERY = """query Q($n: Int!, $id: ID!, $times: Int!) {
  shows(first: $n) { ...Parts kind note seats { row number } host { number } sold loud: shout(times: 2) }
  one: show(id: $id) { id title @include(if: true) shout(times: $times) skipped: title @skip(if: true) }
  none: show(id: "x") { id }
  echo(words: ["a", "b"], kind: TALK)
  __typename
}
fragment Parts on Show { id title __typename }"""


async def test_a_plan_answers_what_graphql_core_answers(monkeypatch):
    ours, theirs, prepared = await answers(QUERY, {"n": 3, "id": "7", "times": 3}, monkeypatch)
    assert prepared[4] is not None
    assert ours.errors is None
    same(ours, theirs)
    assert ours.data["one"] == {"id": "s7", "title": "show 7", "shout": "SHOW 7SHOW 7SHOW 7"}
    assert [s["sold"] for s in ours.data["shows"]] == [0, 10, 20]
    assert ours.data["echo"] == "TALK: a b"


def test_resolvers_with_built_in_scalar_arguments_are_called_directly():
    fields = {f.key: f for f in plans.QueryPlan.of(
        make_schema()._schema, *_parsed('{ show(id: "1") { shout sold } echo(words: ["a"]) }'), strawberry.Info).root.fields}
    assert fields["show"].call is not None
    # A list or an enum argument is Strawberry's to convert: its own wrapper is called.
    assert fields["echo"].call is None


def _parsed(query: str) -> tuple[Any, Any]:
    document = parse(query)
    return document, get_operation_ast(document)


async def test_the_resolvers_of_a_list_start_together_and_batch_in_one_load():
    ctx = context()
    result = await make_schema().execute("{ shows(first: 5) { id sold } }", None, ctx)
    assert result.errors is None
    assert ctx["loads"] == [["s0", "s1", "s2", "s3", "s4"]]


@pytest.mark.parametrize(("query", "variables"), [
    ('{ show(id: "broken-title") { id title } }', None),  # a null where the type forbids one
    ('{ show(id: "raises") { id } }', None),  # a resolver that raises
    ("query Q($t: Int!) { show(id: \"1\") { shout(times: $t) } }", {"t": -1}),  # a nested one
    ('{ show(id: "1") { broken } }', None),  # a resolver's null for a non-null field
    ("query Q($n: Int!) { shows(first: $n) { id } }", {"n": "three"}),  # variables that do not coerce
])
async def test_what_a_plan_cannot_vouch_for_is_graphql_cores_to_answer(monkeypatch, query, variables):
    ours, theirs, prepared = await answers(query, variables, monkeypatch)
    assert prepared[4] is not None
    assert ours.errors
    same(ours, theirs)


async def test_a_refused_answer_runs_the_query_again_with_graphql_core(monkeypatch):
    CALLS.clear()
    await make_schema().execute('{ show(id: "raises") { id } }', None, context())
    assert CALLS == ["show", "show"]  # the plan's run, then graphql-core's: queries may run twice
    CALLS.clear()
    await make_schema().execute('{ show(id: "1") { id } }', None, context())
    assert CALLS == ["show"]


@pytest.mark.parametrize("query", [
    "mutation { touch }",  # mutations are never run twice
    "query Q($s: Boolean!) { shows { id @skip(if: $s) } }",  # fields that depend on the variables
    "{ place { ... on Stage { name } } }",  # abstract types
    "{ __schema { queryType { name } } }",  # introspection
])
async def test_documents_a_plan_does_not_take(query):
    schema = make_schema()
    variables = {"s": False} if "$s" in query else None
    result = await schema.execute(query, variables, context())
    assert result.errors is None
    assert schema._prepared(query, None)[4] is None
