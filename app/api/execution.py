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
2026-11-26, docs/BENCHMARKS.md). Ours reach the executor through weak references.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from graphql import GraphQLResolveInfoHelpers
from graphql.pyutils import RefMap
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class Executor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, whose per-event copies memoise only for their own event,
    freed by reference counting as soon as its operation is done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_helpers()

    def _own_helpers(self) -> None:
        # Read by every field's info: held, but without the strong references that made the cycle.
        self.async_helpers = GraphQLResolveInfoHelpers(gather=_weakly(self.gather_async_work),
                                                       track=_weakly(self.track_async_work))

    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        executor._own_helpers()  # not the subscription's, which may be gone before the event is
        return executor


def _weakly(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, called through a weak reference to its object (which outlives every call)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        return ref()(*args)

    return call
