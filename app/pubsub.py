"""Subscription fan-out: services publish small change messages on named channels.

`Broker` is the interface; `InProcessBroker` delivers within one process
(tests, one API process without REDIS_URL); `RedisBroker` fans out through
Redis, so that a change made by any process reaches subscribers on every
process.

Channels (see `channels` below):
- `entry:<eventId>:<userId>`: one buyer's queue entry changed; the message is the entry.
- `event:<eventId>`: something about the event's queue or inventory changed
  (`{"kind": "queue"}` or `{"kind": "inventory"}`); listeners re-read, coalesced.
  `{"kind": "closing"}`: the queue just closed; listeners re-read at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from contextlib import suppress
from typing import Any, Protocol

from app.batches import Batches

log = logging.getLogger("app.pubsub")

# Publications sent in one pipeline at most (each a list of messages, a closing's thousands among them).
OUTBOX_MOST = 500

Message = dict[str, Any]


ENTRY_PREFIX = "entry:"


class channels:
    """Channel names, in one place."""

    @staticmethod
    def entry(event_id: str, user_id: str) -> str:
        return f"{ENTRY_PREFIX}{event_id}:{user_id}"

    @staticmethod
    def event(event_id: str) -> str:
        return f"event:{event_id}"


class Broker(Protocol):
    async def publish(self, channel: str, message: Message) -> None:
        """Deliver `message` to every current subscriber of `channel` (at most once, no replay)."""

    async def publish_many(self, messages: list[tuple[str, Message]]) -> None:
        """Publish each (channel, message), in order, in one go (a closing tells thousands)."""

    def subscribe(self, channel: str) -> Subscription:
        """`async with broker.subscribe(channel) as inbox`: the channel's messages, in an `Inbox`."""

    async def close(self) -> None:
        """Release connections; subscribers see no more messages."""


class Inbox:
    """One subscriber's messages, in order, for one reader (`get`, `get_nowait`, `empty`, as an
    `asyncio.Queue`). A process holds one per open subscription, ten thousand of them on a
    sale day: a list, and a future only while its reader waits, costs a tenth of a Queue's
    four deques."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Message] = []
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, message: Message) -> None:
        self._items.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Message:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def get_nowait(self) -> Message:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class Subscription:
    """`async with broker.subscribe(channel) as inbox`. A plain object rather than a generator-based
    context manager: one is held for every open subscription."""

    __slots__ = ("_broker", "_channel", "_inbox")

    def __init__(self, broker: InProcessBroker | RedisBroker, channel: str) -> None:
        self._broker, self._channel = broker, channel
        self._inbox: Inbox | None = None

    async def __aenter__(self) -> Inbox:
        self._inbox = await self._broker.join(self._channel)
        return self._inbox

    async def __aexit__(self, *exc: object) -> None:
        assert self._inbox is not None
        await self._broker.leave(self._channel, self._inbox)


class InProcessBroker:
    """Fan-out to the subscribers of this process, through one inbox each."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Inbox]] = defaultdict(set)

    async def publish(self, channel: str, message: Message) -> None:
        self.deliver(channel, message)

    async def publish_many(self, messages: list[tuple[str, Message]]) -> None:
        for channel, message in messages:
            self.deliver(channel, message)

    def deliver(self, channel: str, message: Message) -> None:
        for queue in tuple(self._subscribers.get(channel, ())):
            queue.put_nowait(message)

    def subscribe(self, channel: str) -> Subscription:
        return Subscription(self, channel)

    async def join(self, channel: str) -> Inbox:
        inbox = Inbox()
        self._subscribers[channel].add(inbox)
        return inbox

    async def leave(self, channel: str, inbox: Inbox) -> None:
        listeners = self._subscribers.get(channel)
        if listeners is not None:
            listeners.discard(inbox)
            if not listeners:
                del self._subscribers[channel]

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    def channels(self) -> list[str]:
        return list(self._subscribers)

    async def close(self) -> None:
        self._subscribers.clear()


RESYNC: Message = {"kind": "resync"}
# The event's queue just closed (a sell-out): not coalesced, every waiting buyer is to hear it.
CLOSING: Message = {"kind": "closing"}


class RedisBroker:
    """Fan-out through Redis pub/sub, so a change made by any API process or
    worker reaches the subscribers of every API process.

    One pub/sub connection per process carries every channel that has local
    subscribers; messages are handed to them through an `InProcessBroker`.
    If Redis is unreachable, publishing still reaches this process's own
    subscribers, and the listener reconnects with backoff; after a reconnect
    every local channel gets a `{"kind": "resync"}` message, on which
    subscribers re-read the database (messages sent meanwhile were lost, the
    database never is).
    """

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, health_check_interval=10)
        self._local = InProcessBroker()
        self._outbox: Batches[list[tuple[str, Message]], None] = Batches(most=OUTBOX_MOST)
        self._pubsub: Any = None
        self._listener: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="redis broker")

    async def publish(self, channel: str, message: Message) -> None:
        await self.publish_many([(channel, message)])

    async def publish_many(self, messages: list[tuple[str, Message]]) -> None:
        """Sent together with every other publication of the moment, in one pipeline.

        In a rush hundreds of requests publish at once. Each publish on its own
        took a connection from the pool (opening one when all were busy) and a
        round trip: a join waited 230 ms for its two messages to go out.
        """
        await self._outbox.submit("", messages, self._send)

    async def _send(self, _key: str, batches: list[list[tuple[str, Message]]]) -> list[None]:
        from redis.exceptions import RedisError

        # A buyer's own news reaches this process's subscriber now, not after Redis's round trip:
        # the next buyer's ADMITTED is pushed before the purchase that freed the slot is answered.
        # Redis's copy arrives later and changes nothing (a watcher sends a state once).
        for messages in batches:
            for channel, message in messages:
                if channel.startswith(ENTRY_PREFIX):
                    self._local.deliver(channel, message)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for messages in batches:
                    for channel, message in messages:
                        pipe.publish(channel, json.dumps(message, separators=(",", ":")))
                await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("redis publish failed (%s); delivering to this process only", error)
            for messages in batches:
                for channel, message in messages:
                    if not channel.startswith(ENTRY_PREFIX):
                        self._local.deliver(channel, message)
        return [None] * len(batches)

    def subscribe(self, channel: str) -> Subscription:
        return Subscription(self, channel)

    async def join(self, channel: str) -> Inbox:
        inbox = await self._local.join(channel)
        if self._local.subscriber_count(channel) == 1:
            await self._redis_call("subscribe", channel)
        return inbox

    async def leave(self, channel: str, inbox: Inbox) -> None:
        try:
            if self._local.subscriber_count(channel) == 1:
                await self._redis_call("unsubscribe", channel)
        finally:
            await self._local.leave(channel, inbox)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._listener:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
        await self._outbox.idle()  # what was published before the close still goes out
        await self._local.close()
        with suppress(Exception):
            await self._redis.aclose()

    async def _redis_call(self, command: str, channel: str) -> None:
        from redis.exceptions import RedisError

        if self._pubsub is None:
            return  # not connected: the listener subscribes every local channel when it reconnects
        try:
            await getattr(self._pubsub, command)(channel)
        except (RedisError, OSError) as error:
            log.warning("redis %s %s failed: %s", command, channel, error)

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        backoff, first = 0.1, True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                # A standing channel keeps the connection subscribed even with no listeners.
                await pubsub.subscribe(_CONTROL_CHANNEL, *self._local.channels())
                self._pubsub = pubsub
                self.connected.set()
                if not first:
                    log.info("redis broker reconnected; asking subscribers to re-read")
                    for channel in self._local.channels():
                        self._local.deliver(channel, RESYNC)
                first, backoff = False, 0.1
                async for raw in pubsub.listen():
                    if raw.get("type") == "message":
                        channel = raw["channel"].decode() if isinstance(raw["channel"], bytes) else raw["channel"]
                        self._local.deliver(channel, json.loads(raw["data"]))
                raise ConnectionError("redis pub/sub stream ended")
            except asyncio.CancelledError:
                with suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as error:
                self._pubsub = None
                self.connected.clear()
                log.warning("redis broker lost its connection (%s); retrying in %.1fs", error, backoff)
                with suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


_CONTROL_CHANNEL = "broker:control"
