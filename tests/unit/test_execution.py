"""Subscription events keep nothing once pushed (app/api/execution.py)."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator

import strawberry

from app.api.execution import Executor
from app.api.schema import build_schema


@strawberry.type
class Point:
    seq: int
    position: int
    status: str


@strawberry.type
class Query:
    noop: str = ""


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
