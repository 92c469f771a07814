"""The workers' heartbeat: a Redis key that lives only while some worker keeps renewing it.

API processes read it to decide whether to run their own expiry sweep (a
dead worker must not delay anybody's expiry or admission by more than a
second or two) and to report a silent worker on /readyz.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.timeutil import now_ms

log = logging.getLogger("workers.heartbeat")

KEY = "ticketing:workers:heartbeat"
BEAT_SECONDS = 0.5
# Three missed beats and the workers count as silent.
SILENT_AFTER_MS = 1500


async def beat(redis: Redis) -> None:
    """Say this worker is alive for the next SILENT_AFTER_MS."""
    await redis.set(KEY, now_ms(), px=SILENT_AFTER_MS)


async def beat_forever(redis: Redis) -> None:
    """Renew the heartbeat every BEAT_SECONDS until cancelled (one per worker; any one keeps it alive)."""
    while True:
        await asyncio.sleep(BEAT_SECONDS)
        try:
            await beat(redis)
        except (RedisError, OSError) as error:
            log.warning("heartbeat not written: %s", error)


async def workers_alive(redis: Redis) -> bool:
    """Has some worker beaten within SILENT_AFTER_MS?"""
    return bool(await redis.exists(KEY))
