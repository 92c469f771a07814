"""Rate limits: token buckets, per user (or per client address for anonymous callers),
shared by every API process through Redis.

A bucket holds up to `burst` points and refills at `rate` points a second. An
operation takes as many points as it costs (app/api/cost.py, at least 1), so a
client may send many cheap reads or a few searches. Check-in scans take from a
tighter bucket of their own: a staff token guessing codes gets a few a second.
Without Redis (tests, one process) the buckets live in the process. If Redis
cannot be reached, requests pass: an outage of the limiter must not become an
outage of the sale.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple, Protocol

log = logging.getLogger("app.limits")


class Bucket(NamedTuple):
    """How fast points come back, and how many may be spent at once."""

    rate: float
    burst: float


class Limiter(Protocol):
    async def take(self, key: str, amount: float, bucket: Bucket) -> float:
        """Take `amount` points from the bucket `key`: 0 if taken, else the seconds until they could be."""


# Buckets kept in a process at most; full ones are forgotten first when there are more.
LOCAL_BUCKETS = 100_000


class LocalLimiter:
    """The buckets of one process (no Redis)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (points, when, monotonic seconds)

    async def take(self, key: str, amount: float, bucket: Bucket) -> float:
        now = time.monotonic()
        points, since = self._buckets.get(key, (bucket.burst, now))
        points = min(bucket.burst, points + (now - since) * bucket.rate)
        wait = 0.0 if points >= amount else (amount - points) / bucket.rate
        if not wait:
            points -= amount
        if len(self._buckets) >= LOCAL_BUCKETS and key not in self._buckets:
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < bucket.burst}
        self._buckets[key] = (points, now)
        return wait


# One round trip, atomic: refill by the time passed on Redis's own clock, then take or say how long.
_TAKE = """
local now_s, now_us = unpack(redis.call('TIME'))
local now = tonumber(now_s) + tonumber(now_us) / 1000000
local rate, burst, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local points = tonumber(redis.call('HGET', KEYS[1], 'p') or burst)
local since = tonumber(redis.call('HGET', KEYS[1], 't') or now)
points = math.min(burst, points + (now - since) * rate)
local wait = 0
if points >= amount then points = points - amount else wait = (amount - points) / rate end
redis.call('HSET', KEYS[1], 'p', tostring(points), 't', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisLimiter:
    """The buckets in Redis, so that every API process spends from the same ones."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        self._take = self._redis.register_script(_TAKE)

    async def take(self, key: str, amount: float, bucket: Bucket) -> float:
        from redis.exceptions import RedisError

        try:
            return float(await self._take(keys=[f"limit:{key}"], args=[bucket.rate, bucket.burst, amount]))
        except (RedisError, OSError) as error:
            log.warning("rate limiter unreachable (%s): letting the request through", error)
            return 0.0

    async def close(self) -> None:
        await self._redis.aclose()
