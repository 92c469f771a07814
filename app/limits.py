"""Rate limits: token buckets, per user (or per client address for anonymous callers),
shared by every API process through Redis.

A bucket holds up to `burst` points and refills at `rate` points a second. An
operation takes as many points as it costs (app/api/cost.py, at least 1), so a
client may send many cheap reads or a few searches. Check-in scans take from a
tighter bucket of their own: a staff token guessing codes gets a few a second.
With Redis, a process takes a lease of points at a time (a twentieth of a second's
refill, spent locally for up to a second), so a busy client costs Redis a round
trip every few hundred requests, not one each; a bucket refilled by fewer than
twenty points a second is leased a point at a time, exactly. Without Redis (tests, one process) the buckets live in the process. If Redis
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


# One round trip, atomic: refill by the time passed on Redis's own clock, then take between
# `amount` and `want` points (as many as there are), or say how long until `amount` could be.
_TAKE = """
local now_s, now_us = unpack(redis.call('TIME'))
local now = tonumber(now_s) + tonumber(now_us) / 1000000
local rate, burst, amount, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local points = tonumber(redis.call('HGET', KEYS[1], 'p') or burst)
local since = tonumber(redis.call('HGET', KEYS[1], 't') or now)
points = math.min(burst, points + (now - since) * rate)
local taken, wait = 0, 0
if points >= amount then taken = math.min(points, want); points = points - taken else wait = (amount - points) / rate end
redis.call('HSET', KEYS[1], 'p', tostring(points), 't', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {tostring(taken), tostring(wait)}
"""

# A lease is this many seconds of the bucket's refill, spent locally for at most LEASE_SECONDS:
# leases left unspent waste at most a twentieth of the rate per process.
LEASE_FRACTION = 0.05
LEASE_SECONDS = 1.0


class RedisLimiter:
    """The buckets in Redis, so that every API process spends from the same ones."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        self._take = self._redis.register_script(_TAKE)
        self._leases: dict[str, tuple[float, float]] = {}  # key -> (points left, monotonic deadline)

    async def take(self, key: str, amount: float, bucket: Bucket) -> float:
        from redis.exceptions import RedisError

        now = time.monotonic()
        left, until = self._leases.get(key, (0.0, now))
        if until > now and left >= amount:
            self._leases[key] = (left - amount, until)
            return 0.0
        try:
            taken, wait = await self._take(keys=[f"limit:{key}"],
                                           args=[bucket.rate, bucket.burst, amount, max(amount, bucket.rate * LEASE_FRACTION)])
        except (RedisError, OSError) as error:
            log.warning("rate limiter unreachable (%s): letting the request through", error)
            return 0.0
        if float(wait):
            return float(wait)
        if len(self._leases) >= LOCAL_BUCKETS and key not in self._leases:
            self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
        self._leases[key] = (float(taken) - amount, now + LEASE_SECONDS)
        return 0.0

    async def close(self) -> None:
        await self._redis.aclose()
