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
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from app.pubsub import CLOSING, Broker, Inbox, channels

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
        self._inboxes: set[Inbox] = set()

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

    def ticks_into(self, inbox: Inbox) -> _Ticks:
        """`with feed.ticks_into(inbox)`: NEWER goes into `inbox` after every reload, so a subscriber
        that already waits on its own inbox needs no second waiter (a task each, idle, for every
        subscriber)."""
        return _Ticks(self._inboxes, inbox)

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

    def positions(self, event_id: str, load: Callable[[], Awaitable[Any]]) -> FeedUse:
        """`async with feeds.positions(...) as feed`: the event's turns (every waiting buyer's position),
        re-read at most once a second after a queue change, and at once when the queue closes."""
        kinds = frozenset({"queue", "resync", CLOSING["kind"]})
        return FeedUse(self, ("positions", event_id), load, POSITION_INTERVAL, kinds)

    def inventory(self, event_id: str, load: Callable[[], Awaitable[Any]]) -> FeedUse:
        """`async with feeds.inventory(...) as feed`: the event's inventory, re-read at most five
        times a second after any change."""
        return FeedUse(self, ("inventory", event_id), load, INVENTORY_INTERVAL, frozenset({"queue", "inventory", "resync"}))

    def use(self, key: tuple[str, str], load: Callable[[], Awaitable[Any]], interval: float, kinds: frozenset[str]) -> Feed:
        """The shared feed of `key`, started if it is the first use; `release` when done."""
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = Feed(self._broker, channels.event(key[1]), load, interval, kinds)
            feed.start()
        feed.subscribers += 1
        return feed

    async def release(self, key: tuple[str, str], feed: Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0 and self._feeds.get(key) is feed:
            del self._feeds[key]
            await feed.stop()

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            await feed.stop()
        self._feeds.clear()


class FeedUse:
    """One subscriber's use of a shared feed (`async with`): a plain object rather than a
    generator-based context manager, as one is held for every open subscription."""

    __slots__ = ("_feeds", "_key", "_load", "_interval", "_kinds", "_feed")

    def __init__(
        self, feeds: EventFeeds, key: tuple[str, str], load: Callable[[], Awaitable[Any]], interval: float,
        kinds: frozenset[str],
    ) -> None:
        self._feeds, self._key, self._interval, self._kinds = feeds, key, interval, kinds
        self._load: Callable[[], Awaitable[Any]] | None = load
        self._feed: Feed | None = None

    async def __aenter__(self) -> Feed:
        assert self._load is not None
        self._feed = feed = self._feeds.use(self._key, self._load, self._interval, self._kinds)
        self._load = None  # the feed holds it if it needed it: not one per subscriber
        try:
            await feed.ready()
        except BaseException:
            await self._feeds.release(self._key, feed)
            raise
        return feed

    async def __aexit__(self, *exc: object) -> None:
        assert self._feed is not None
        await self._feeds.release(self._key, self._feed)


class _Ticks:
    __slots__ = ("_inboxes", "_inbox")

    def __init__(self, inboxes: set[Inbox], inbox: Inbox) -> None:
        self._inboxes, self._inbox = inboxes, inbox

    def __enter__(self) -> None:
        self._inboxes.add(self._inbox)

    def __exit__(self, *exc: object) -> None:
        self._inboxes.discard(self._inbox)
