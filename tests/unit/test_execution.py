"""Subscription events keep nothing once pushed, and an operation leaves no garbage for the
collector (app/api/execution.py)."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.api import plans
from app.api.execution import Executor
from app.api.schema import Schema, build_schema


@strawberry.type
class Point:
    seq: int
    position: int
    status: str


@strawberry.type
class Query:
    noop: str = ""

    @strawberry.field
    async def point(self, seq: int) -> Point:
        return Point(seq=seq, position=seq, status="WAITING")


EVENTS = 3000


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def points(self) -> AsyncGenerator[Point, None]:
        for i in range(EVENTS):
            yield Point(seq=i, position=i, status="WAITING")


async def _objects_kept_per_event(schema: strawberry.Schema) -> float:
    stream = await schema.subscribe("subscription { points { seq position status } }")
    counts: dict[int, int] = {}
    async for result in stream:
        assert result.errors is None
        seq = result.data["points"]["seq"]
        if seq in (1000, EVENTS - 1):
            gc.collect()
            counts[seq] = len(gc.get_objects())
    return (counts[EVENTS - 1] - counts[1000]) / (EVENTS - 1001)


async def test_a_long_subscription_keeps_no_objects_per_event_pushed():
    kept = await _objects_kept_per_event(strawberry.Schema(query=Query, subscription=Subscription,
                                                             execution_context_class=Executor))
    assert kept < 0.5, f"{kept:.1f} objects kept per event"


async def test_graphql_cores_own_executor_is_the_one_that_keeps_them():
    # The reason for ours: should graphql-core fix its per-event memo, this fails and ours can go.
    kept = await _objects_kept_per_event(strawberry.Schema(query=Query, subscription=Subscription))
    assert kept > 5


def test_the_api_runs_on_our_executor():
    assert build_schema().execution_context_class is Executor


async def _cyclic_garbage_of(schema: Schema, operations: int = 50) -> list[object]:
    """What the collector alone would free after `operations` queries seen before (the API's
    path for every request but a document's first): objects kept only by cycles."""
    query = "query Q($s: Int!) { point(seq: $s) { seq position status } }"
    await schema.execute(query, variable_values={"s": 0})
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for seq in range(operations):
            result = await schema.execute(query, variable_values={"s": seq})
            assert result.errors is None and result.data["point"]["seq"] == seq
        del result
        gc.collect()
        return [o for o in gc.garbage if type(o).__module__.startswith(("graphql", "strawberry", "app"))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("planned", [True, False], ids=["query plan", "executor"])
async def test_an_executed_operation_is_freed_without_the_garbage_collector(monkeypatch, planned):
    if not planned:  # as a mutation, or a query its plan leaves to graphql-core, is executed
        monkeypatch.setattr(plans.QueryPlan, "of", lambda *_args: None)
    schema = Schema(query=Query, subscription=Subscription, execution_context_class=Executor, fast_rules=[])
    assert await _cyclic_garbage_of(schema) == []


async def test_graphql_cores_own_executor_waits_for_the_collector(monkeypatch):
    monkeypatch.setattr(plans.QueryPlan, "of", lambda *_args: None)
    # Its `async_helpers` cycle: should graphql-core drop it, this fails and our property can go.
    left = await _cyclic_garbage_of(Schema(query=Query, subscription=Subscription, fast_rules=[],
                                           execution_context_class=StrawberryGraphQLCoreExecutionContext))
    assert sum(isinstance(o, StrawberryGraphQLCoreExecutionContext) for o in left) >= 50


async def test_a_resolver_can_still_gather_and_track_through_its_info(monkeypatch):
    monkeypatch.setattr(plans.QueryPlan, "of", lambda *_args: None)
    tracked: list[int] = []

    async def two() -> int:
        return 2

    async def note() -> None:
        tracked.append(1)

    @strawberry.type
    class Gathering:
        @strawberry.field
        async def total(self, info: strawberry.Info) -> int:
            helpers = info._raw_info.async_helpers
            helpers.track([note()])
            return sum(await helpers.gather([two(), two()]))

    schema = Schema(query=Gathering, execution_context_class=Executor, fast_rules=[])
    for _ in range(2):  # the second send is the prepared path's
        assert (await schema.execute("{ total }")).data == {"total": 4}
    assert tracked == [1, 1]
