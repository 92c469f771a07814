"""The executor every operation runs on: Strawberry's, with subscription events that
forget what they memoised, and nothing that keeps an executor alive after its operation.

graphql-core 3.3 runs each subscription event on a shallow copy of the
subscription's executor (`build_per_event_executor`), so the copy shares the
memo of collected subfields, keyed by the identity of a list built afresh for
every event: nothing is ever found there, and every entry is kept. Measured
here: 20 objects kept per event pushed; after the 42,846 pushes of a
2,000-buyer rush the garbage collector's passes over them were a quarter of
the API's CPU, and each event cost 45 us at 2,000 events and 62 us at 20,000.
A per-event executor with its own memo keeps nothing and costs the same.

graphql-core also stores, on each executor, helpers made of two of its own
bound methods (`async_helpers`): a reference cycle, so no executor was freed
when its operation ended. Each request's executor, with the fields it had
collected (113 objects for Q2), waited for the garbage collector, whose
passes then found ~47,000 such objects each time and took ~60 ms: 130 us of
CPU per Q2, a tenth of it, and a 60 ms pause every ~450 requests (measured
2026-11-26, docs/BENCHMARKS.md). Made when asked for, the helpers hold no cycle.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfoHelpers
from graphql.pyutils import RefMap
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class Executor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, whose per-event copies memoise only for their own event,
    freed by reference counting as soon as its operation is done."""

    @property
    def async_helpers(self) -> GraphQLResolveInfoHelpers:
        """What a resolver's `info.async_helpers` gathers and tracks with, made for each field
        that asks (graphql-core builds it once per executor and stores it: a cycle)."""
        return GraphQLResolveInfoHelpers(gather=self.gather_async_work, track=self.track_async_work)

    @async_helpers.setter
    def async_helpers(self, _made: GraphQLResolveInfoHelpers) -> None:
        """graphql-core's own, stored in `__init__`, is dropped: it is the cycle."""

    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        return executor
