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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
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

    async def publish_many(self, messages: list[tuple[str, Message]]) -> None:
        """Publish each (channel, message), in order, in one go (a closing tells thousands)."""

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

    async def publish_many(self, messages: list[tuple[str, Message]]) -> None:
        for channel, message in messages:
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
        self._pubsub: Any = None
        self._listener: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="redis broker")

    async def publish(self, channel: str, message: Message) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.publish(channel, json.dumps(message, separators=(",", ":")))
        except (RedisError, OSError) as error:
            log.warning("redis publish failed (%s); delivering to this process only", error)
            self._local.deliver(channel, message)

    async def publish_many(self, messages: list[tuple[str, Message]]) -> None:
        """One round trip to Redis for all of them (a pipeline), not one each."""
        from redis.exceptions import RedisError

        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, message in messages:
                    pipe.publish(channel, json.dumps(message, separators=(",", ":")))
                await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("redis publish failed (%s); delivering to this process only", error)
            for channel, message in messages:
                self._local.deliver(channel, message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[Message]]:
        async with self._local.subscribe(channel) as queue:
            if self._local.subscriber_count(channel) == 1:
                await self._redis_call("subscribe", channel)
            try:
                yield queue
            finally:
                if self._local.subscriber_count(channel) == 1:
                    await self._redis_call("unsubscribe", channel)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._listener:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
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
