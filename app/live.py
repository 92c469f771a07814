"""Live feeds: one shared reader per event and process, however many subscribers.

Ten thousand buyers watching their queue position must not cost ten
thousand database queries per admission. Each API process keeps, per event
that has subscribers, one `Feed` that listens on the event's channel and
re-reads what changed at most `min_interval` apart (positions: once a
second; inventory: five times a second). Subscribers wait for a newer
version and compute their own view from the shared value (a bisect for a
position), with no query of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

from app.pubsub import CLOSING, Broker, channels

log = logging.getLogger("app.live")

POSITION_INTERVAL = 1.0
# What `Feed.ticks_into` puts in a subscriber's queue: the feed has a newer value.
NEWER: dict = {"kind": "feed newer"}
INVENTORY_INTERVAL = 0.2
# Kinds of message read at once, not coalesced.
URGENT = frozenset({CLOSING["kind"]})


class Feed:
    """The latest value of one loader, reloaded after each change, coalesced."""

    def __init__(
        self, broker: Broker, channel: str, load: Callable[[], Awaitable[Any]], min_interval: float,
        kinds: frozenset[str],
    ) -> None:
        self._broker, self._channel, self._load = broker, channel, load
        self._min_interval, self._kinds = min_interval, kinds
        self.value: Any = None
        self.version = 0
        self._newer = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.subscribers = 0
        self._inboxes: set[asyncio.Queue] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"feed {self._channel}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def ready(self) -> None:
        """Wait for the first value; raise what the first load raised, if it failed."""
        waiter = asyncio.create_task(self._ready.wait())
        assert self._task is not None
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            waiter.cancel()
            self._task.result()

    @contextmanager
    def ticks_into(self, inbox: asyncio.Queue) -> Iterator[None]:
        """Put NEWER into `inbox` after every reload, so a subscriber that already waits on its
        own queue needs no second waiter (a task each, idle, for every subscriber)."""
        self._inboxes.add(inbox)
        try:
            yield
        finally:
            self._inboxes.discard(inbox)

    async def wait_newer(self, than: int) -> tuple[int, Any]:
        """The first value whose version is above `than` (returns at once if there is one)."""
        while self.version <= than:
            await self._newer.wait()
        return self.version, self.value

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._broker.subscribe(self._channel) as messages:
            await self._reload()
            last = loop.time()
            while True:
                message = await messages.get()
                if message.get("kind") not in self._kinds:
                    continue
                # Coalesce: changes meanwhile are read together, unless one is urgent.
                while message.get("kind") not in URGENT and (delay := last + self._min_interval - loop.time()) > 0:
                    try:
                        message = await asyncio.wait_for(messages.get(), delay)
                    except TimeoutError:
                        break
                while not messages.empty():
                    messages.get_nowait()
                await self._reload()
                last = loop.time()

    async def _reload(self) -> None:
        try:
            self.value = await self._load()
        except Exception:  # noqa: BLE001 - keep serving the last value; the next change retries
            log.exception("feed %s could not reload", self._channel)
            if self._ready.is_set():
                return
            raise
        self.version += 1
        self._ready.set()
        self._newer.set()
        self._newer = asyncio.Event()
        for inbox in self._inboxes:
            inbox.put_nowait(NEWER)


class EventFeeds:
    """The feeds of this process, keyed by (what, event), shared by their subscribers."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._feeds: dict[tuple[str, str], Feed] = {}

    @asynccontextmanager
    async def positions(self, event_id: str, load: Callable[[], Awaitable[Any]]) -> AsyncIterator[Feed]:
        """The event's turns (every waiting buyer's position), re-read at most once a second after a queue
        change, and at once when the queue closes."""
        kinds = frozenset({"queue", "resync", CLOSING["kind"]})
        async with self._shared("positions", event_id, load, POSITION_INTERVAL, kinds) as feed:
            yield feed

    @asynccontextmanager
    async def inventory(self, event_id: str, load: Callable[[], Awaitable[Any]]) -> AsyncIterator[Feed]:
        """The event's inventory, re-read at most five times a second after any change."""
        async with self._shared("inventory", event_id, load, INVENTORY_INTERVAL, frozenset({"queue", "inventory", "resync"})) as feed:
            yield feed

    @asynccontextmanager
    async def _shared(
        self, what: str, event_id: str, load: Callable[[], Awaitable[Any]], interval: float, kinds: frozenset[str]
    ) -> AsyncIterator[Feed]:
        key = (what, event_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = Feed(self._broker, channels.event(event_id), load, interval, kinds)
            feed.start()
        feed.subscribers += 1
        try:
            await feed.ready()
            yield feed
        finally:
            feed.subscribers -= 1
            if feed.subscribers == 0 and self._feeds.get(key) is feed:
                del self._feeds[key]
                await feed.stop()

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            await feed.stop()
        self._feeds.clear()
