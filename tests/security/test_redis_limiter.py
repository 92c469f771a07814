"""The rate limits' buckets in Redis (app/limits.py): shared by every API process, leased a
few points at a time so that a busy client does not cost a round trip per request."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.embedded import EmbeddedRedis
from app.limits import Bucket, RedisLimiter


async def _script_calls(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_two_processes_spend_from_one_bucket(redis_server: EmbeddedRedis):
    """Exact for a slow bucket (a point a second leases a point at a time): 10 between two processes."""
    first, second = RedisLimiter(redis_server.url()), RedisLimiter(redis_server.url())
    bucket = Bucket(rate=1, burst=10)
    try:
        taken = [await limiter.take("shared-exact", 1, bucket) == 0 for _ in range(8) for limiter in (first, second)]
        assert taken.count(True) == 10, taken
        wait = await first.take("shared-exact", 1, bucket)
        assert 0 < wait <= 1.5
    finally:
        await first.close()
        await second.close()


async def test_a_busy_client_costs_redis_a_round_trip_per_lease_not_per_request(redis_server: EmbeddedRedis):
    limiter = RedisLimiter(redis_server.url())
    bucket = Bucket(rate=10_000, burst=50_000)  # the defaults: a lease of 500 points
    try:
        before = await _script_calls(redis_server.url())
        for _ in range(1_000):
            assert await limiter.take("busy", 1, bucket) == 0
        calls = await _script_calls(redis_server.url()) - before
        assert calls <= 3, calls  # 1,000 points in leases of 500
    finally:
        await limiter.close()


async def test_leases_never_let_a_client_spend_more_than_its_bucket(redis_server: EmbeddedRedis):
    """Two processes leasing from one bucket of 100 points that barely refills: 100 taken in all."""
    first, second = RedisLimiter(redis_server.url()), RedisLimiter(redis_server.url())
    bucket = Bucket(rate=40, burst=100)  # leases of 2 points
    try:
        taken = 0
        for _ in range(150):
            for limiter in (first, second):
                taken += await limiter.take("leased", 1, bucket) == 0
        assert 100 <= taken <= 100 + 40 * 2, taken  # the bucket, and what it refilled meanwhile
        assert await first.take("leased", 50, bucket) > 0
    finally:
        await first.close()
        await second.close()


async def test_an_unreachable_redis_lets_requests_through():
    limiter = RedisLimiter("redis://127.0.0.1:1")
    try:
        assert await limiter.take("anyone", 1, Bucket(rate=1, burst=1)) == 0
    finally:
        await limiter.close()
