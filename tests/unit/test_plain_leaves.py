"""Plain leaves are read without graphql-core's field path, with its answers and its errors
(app/api/execution.py `Executor.execute_field`)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.api import plans
from graphql import GraphQLBoolean, GraphQLID, GraphQLInt, GraphQLString

from app.api.execution import Executor, serializer
from app.api.scalars import DATETIME_SCALAR, DateTime
from app.api.schema import Schema
from strawberry.schema.config import StrawberryConfig


@strawberry.enum
class Mood(enum.Enum):
    CALM = "calm"
    LOUD = "loud"


@strawberry.type
class Room:
    name: str
    seats: int


@strawberry.type
class Show:
    id: strawberry.ID
    title: str
    note: str | None
    mood: Mood
    price: float
    starts_at: DateTime  # type: ignore[valid-type]
    room: Room
    rooms: list[Room]
    count: Any = strawberry.field(graphql_type=int)  # what the shop stores is not always an int

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.title.upper() * times


SHOW = {"id": "s1", "title": "Night", "note": None, "mood": Mood.LOUD, "price": 12.5,
        "starts_at": datetime(2027, 3, 1, 20, 30, tzinfo=UTC), "room": Room(name="Main", seats=300),
        "rooms": [Room(name="A", seats=1), Room(name="B", seats=2)], "count": 3}
QUERY = ("query Q($n: Int!) { show { id title note mood price startsAt count room { name seats }"
         " rooms { name seats __typename } shout(times: $n) alias: title } }")


def _schema(shown: dict[str, Any], executor: type = Executor) -> Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        async def show(self) -> Show:
            return Show(**shown)

    return Schema(query=Query, execution_context_class=executor, fast_rules=[],
                  config=StrawberryConfig(scalar_map={DateTime: DATETIME_SCALAR}))


@pytest.fixture(autouse=True)
def no_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's path: mutations, and queries their plans leave to it (app/api/plans.py)."""
    monkeypatch.setattr(plans.QueryPlan, "of", lambda *_args: None)


async def _both(shown: dict[str, Any]) -> tuple[Any, Any]:
    """The answer of our executor and of graphql-core's own (Strawberry's), to a document seen before."""
    answers = []
    for executor in (Executor, StrawberryGraphQLCoreExecutionContext):
        schema = _schema(shown, executor)
        await schema.execute(QUERY, variable_values={"n": 2})  # the first sighting takes Strawberry's path
        answers.append(await schema.execute(QUERY, variable_values={"n": 2}))
    return answers[0], answers[1]


async def test_the_answer_is_graphql_cores():
    ours, theirs = await _both(SHOW)
    assert ours.errors is None and ours.data == theirs.data
    assert ours.data["show"]["mood"] == "LOUD" and ours.data["show"]["note"] is None
    assert ours.data["show"]["shout"] == "NIGHTNIGHT" and ours.data["show"]["rooms"][1]["__typename"] == "Room"


@pytest.mark.parametrize("broken", [{"title": None}, {"count": "three"}, {"mood": "LOUD"}])
async def test_a_value_its_type_refuses_is_graphql_cores_error(broken):
    ours, theirs = await _both(SHOW | broken)
    assert ours.data == theirs.data is None
    assert [(e.message, e.path) for e in ours.errors] == [(e.message, e.path) for e in theirs.errors]


async def test_only_the_fields_that_are_not_plain_leaves_take_graphql_cores_path(monkeypatch):
    taken: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_field

    def counted(self, parent_type, source, details, *rest):
        taken.append(f"{parent_type.name}.{details[0].node.name.value}")
        return original(self, parent_type, source, details, *rest)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counted)
    schema = _schema(SHOW)
    await schema.execute(QUERY, variable_values={"n": 1})
    taken.clear()
    result = await schema.execute(QUERY, variable_values={"n": 1})
    assert result.errors is None
    # The root field, the objects and lists, the field with a resolver, and __typename (a meta field).
    assert sorted(taken) == ["Query.show", "Room.__typename", "Room.__typename", "Show.room", "Show.rooms", "Show.shout"]


@pytest.mark.parametrize("kind", [GraphQLString, GraphQLID, GraphQLInt, GraphQLBoolean])
@pytest.mark.parametrize("value", ["text", "", 7, 0, -(2**31), 2**31, True, False, 2.0, 2.5, None, [1]])
def test_a_built_in_scalar_serializes_as_graphql_core_does(kind, value):
    def outcome(serialize):
        try:
            return ("value", serialize(value), type(serialize(value)))
        except Exception as error:  # noqa: BLE001 - the refusal is part of the answer
            return ("error", str(error))

    assert outcome(serializer(kind)) == outcome(kind.serialize)
