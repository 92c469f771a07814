"""Group commit: calls for the same key that arrive while one batch of them is running
go together in the next batch.

Nobody waits for a timer: a lone call runs at once, and a batch forms only from
the calls that queue up behind one in flight, so the busier the moment the
bigger the batches and the fewer the round trips. A call joins only a batch
that has not started, so it sees every write its caller made before it.

Each batch runs in a task of its own, not in any caller's, so a caller who
gives up (a client hangs up) cannot cancel the others' work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("app.batches")

T = TypeVar("T")
R = TypeVar("R")

# Runs one batch: the key, and the items in arrival order; one result per item, in order.
# A result that is an exception is raised to that item's caller alone.
Run = Callable[[str, list[T]], Awaitable[list[R]]]


class Batches(Generic[T, R]):
    """One per process and kind of call: the calls waiting for the next batch, per key."""

    def __init__(self, most: int = 100) -> None:
        self._most = most  # items per batch at most, so that one batch's command stays short
        self._waiting: dict[str, list[tuple[T, asyncio.Future]]] = {}
        self._tasks: dict[str, asyncio.Task] = {}  # held, so that a running batch is never collected

    async def submit(self, key: str, item: T, run: Run) -> R:
        """The result for `item`, from the next batch of `key` (run by `run`)."""
        # Shielded: a caller who gives up stops waiting, but the batch runs all the same.
        return await asyncio.shield(self._enqueue(key, item, run))

    def post(self, key: str, item: T, run: Run) -> None:
        """As `submit`, for a caller who does not wait for the outcome: a failure is logged."""
        self._enqueue(key, item, run).add_done_callback(_log_failure)

    async def idle(self) -> None:
        """Wait until every batch running or waiting has run (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _enqueue(self, key: str, item: T, run: Run) -> asyncio.Future:
        answer = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, answer))
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._drain(key, run))
        return answer

    async def _drain(self, key: str, run: Run) -> None:
        try:
            while waiting := self._waiting.get(key):
                batch, self._waiting[key] = waiting[: self._most], waiting[self._most :]
                try:
                    results = await run(key, [item for item, _ in batch])
                    outcomes = [(answer, result, None) for (_, answer), result in zip(batch, results, strict=True)]
                except Exception as exc:  # every call of the batch hears it, as a lone call would
                    outcomes = [(answer, None, exc) for _, answer in batch]
                for answer, result, exc in outcomes:
                    if answer.done():
                        continue
                    if exc is None and isinstance(result, BaseException):
                        exc = result
                    if exc is None:
                        answer.set_result(result)
                    else:
                        answer.set_exception(exc)
        finally:
            del self._tasks[key]
            if not self._waiting.get(key):
                self._waiting.pop(key, None)


def _log_failure(answer: asyncio.Future) -> None:
    if not answer.cancelled() and answer.exception() is not None:
        log.error("a batch posted without a waiter failed", exc_info=answer.exception())
