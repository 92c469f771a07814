"""Subscription events of a flat selection are shaped without graphql-core's executor
(app/api/flat_results.py), and say exactly what the executor would."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest
import strawberry
from graphql import parse
from graphql.execution import execute_subscription_event

from app.api.execution import Executor
from app.api.flat_results import flat_shape
from app.api.queue.types import QueueEntry
from app.api.schema import Schema, build_schema
from app.queue import models as queue_models

SCHEMA = build_schema()


def _entry(**changes: Any) -> QueueEntry:
    model = queue_models.QueueEntry.model_validate({
        "_id": "e1:u1", "eventId": "e1", "userId": "u1", "seq": 7, "status": "WAITING",
        "joinedAtUtc": 1_700_000_000_000, "expiresAtUtc": 1_700_000_600_000})
    entry = QueueEntry.from_model(model, 3)
    for name, value in changes.items():
        setattr(entry, name, value)
    return entry


def _both(document: str, payload: Any, variables: dict | None = None) -> tuple[Any, Any]:
    """What the flat shape says of `payload`, and what graphql-core's execution says."""
    executor = Executor.build(SCHEMA._schema, parse(document), raw_variable_values={"eventId": "e1", **(variables or {})})
    assert isinstance(executor, Executor), executor
    shape = flat_shape(executor)
    executed = execute_subscription_event(executor.build_per_event_executor(payload))
    return (shape(payload) if shape is not None else None), executed


FLAT = [
    "subscription Q($eventId: ID!) { queueUpdates(eventId: $eventId) { eventId userId seq status position admittedAt expiresAt } }",
    "subscription Q($eventId: ID!) { mine: queueUpdates(eventId: $eventId) { __typename where: position n: seq status } }",
    "subscription Q($eventId: ID!) { queueUpdates(eventId: $eventId) { ...F ... on QueueEntry { joinedAt seq } } }"
    " fragment F on QueueEntry { seq cooldownUntil }",
    "subscription Q($eventId: ID!, $more: Boolean!) { queueUpdates(eventId: $eventId) { seq position @include(if: $more)"
    " status @skip(if: $more) } }",
    "subscription Q($eventId: ID!) { eventInventory(eventId: $eventId) { eventId status ticketsRemaining waitingCount } }",
]


@pytest.mark.parametrize("document", FLAT)
@pytest.mark.parametrize("more", [True, False])
def test_a_flat_selection_is_shaped_as_the_executor_would_answer(document: str, more: bool):
    payload: Any = _entry(admitted_at=None, position=3)
    if "eventInventory" in document:
        payload = type("Inventory", (), {"event_id": "e1", "status": "ON_SALE", "tickets_remaining": 4, "waiting_count": 2})()
    shaped, executed = _both(document, payload, {"more": more} if "$more" in document else None)
    assert executed.errors is None, executed.errors
    assert shaped == executed.data
    assert list(shaped[next(iter(shaped))]) == list(executed.data[next(iter(executed.data))])  # same order


@pytest.mark.parametrize("document", [
    # an object field below the root field
    "subscription Q($eventId: ID!) { eventInventory(eventId: $eventId) { eventId ticketTypes { id } } }",
])
def test_a_selection_that_is_not_flat_has_no_shape(document: str):
    executor = Executor.build(SCHEMA._schema, parse(document), raw_variable_values={"eventId": "e1"})
    assert flat_shape(executor) is None


def test_a_null_where_the_type_forbids_one_is_left_to_the_executor_and_its_error():
    shaped, executed = _both(FLAT[0], _entry(expires_at=None))
    assert shaped is None
    assert executed.data is None and "Cannot return null for non-nullable field" in executed.errors[0].message


@strawberry.type
class Thing:
    plain: int

    @strawberry.field
    def computed(self) -> int:
        return self.plain * 2


@strawberry.type
class ToyQuery:
    nothing: int = 0


@strawberry.type
class ToySubscription:
    @strawberry.subscription
    async def things(self) -> AsyncGenerator[Thing, None]:
        for n in range(3):
            yield Thing(plain=n)

    @strawberry.subscription
    async def broken(self) -> AsyncGenerator[Thing, None]:
        yield Thing(plain=1)
        yield Thing(plain=None)  # type: ignore[arg-type]  # what the type forbids
        yield Thing(plain=2)


TOY = Schema(query=ToyQuery, subscription=ToySubscription, fast_rules=[], execution_context_class=Executor)


def test_a_field_with_a_resolver_of_its_own_has_no_shape():
    plain = Executor.build(TOY._schema, parse("subscription { things { plain } }"))
    computed = Executor.build(TOY._schema, parse("subscription { things { plain computed } }"))
    assert flat_shape(plain) is not None
    assert flat_shape(computed) is None


async def test_a_flat_subscription_builds_no_executor_per_event(monkeypatch):
    """The stream itself takes the shape: events of `queueUpdates`-like selections skip the executor."""
    built = []
    original = Executor.build_per_event_executor
    monkeypatch.setattr(Executor, "build_per_event_executor", lambda self, p: built.append(p) or original(self, p))
    for query, executed in [("subscription { things { plain } }", 0), ("subscription { things { computed } }", 3)]:
        built.clear()
        results = [r async for r in await TOY.stream(query)]
        field = query.split("{")[2].split()[0]
        assert [r.data for r in results] == [{"things": {field: n * (2 if field == "computed" else 1)}} for n in range(3)]
        assert len(built) == executed, built


async def test_an_event_the_shape_cannot_vouch_for_is_executed_and_says_why(monkeypatch):
    built = []
    original = Executor.build_per_event_executor
    monkeypatch.setattr(Executor, "build_per_event_executor", lambda self, p: built.append(p) or original(self, p))
    results = [r async for r in await TOY.stream("subscription { broken { plain } }")]
    assert [r.data for r in results] == [{"broken": {"plain": 1}}, None, {"broken": {"plain": 2}}]
    (error,) = results[1].errors  # the executor's own error, made public as every one is
    assert error.path == ["broken", "plain"] and error.extensions["code"] == "INTERNAL_SERVER_ERROR"
    assert len(built) == 1  # the executor, rebuilt for that event alone
