"""Subscription fan-out: services publish small change messages on named channels.

`Broker` is the interface; `InProcessBroker` delivers within one process
(tests, one API process). The Redis implementation of the workers issue sits
behind the same interface so that a change made by any process reaches
subscribers on every process.

Channels (see `channels` below):
- `entry:<eventId>:<userId>`: one buyer's queue entry changed; the message is the entry.
- `event:<eventId>`: something about the event's queue or inventory changed
  (`{"kind": "queue"}` or `{"kind": "inventory"}`); listeners re-read, coalesced.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger("app.pubsub")

Message = dict[str, Any]


class channels:
    """Channel names, in one place."""

    @staticmethod
    def entry(event_id: str, user_id: str) -> str:
        return f"entry:{event_id}:{user_id}"

    @staticmethod
    def event(event_id: str) -> str:
        return f"event:{event_id}"


class Broker(Protocol):
    async def publish(self, channel: str, message: Message) -> None:
        """Deliver `message` to every current subscriber of `channel` (at most once, no replay)."""

    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an `asyncio.Queue` of the channel's messages."""

    async def close(self) -> None:
        """Release connections; subscribers see no more messages."""


class InProcessBroker:
    """Fan-out to the subscribers of this process, through one queue each."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Message]]] = defaultdict(set)

    async def publish(self, channel: str, message: Message) -> None:
        self.deliver(channel, message)

    def deliver(self, channel: str, message: Message) -> None:
        for queue in tuple(self._subscribers.get(channel, ())):
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[Message]]:
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self._subscribers[channel].add(queue)
        try:
            yield queue
        finally:
            listeners = self._subscribers.get(channel)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del self._subscribers[channel]

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    async def close(self) -> None:
        self._subscribers.clear()
