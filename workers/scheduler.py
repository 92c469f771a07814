"""The `Scheduler` of app.runtime on arq: deferred jobs with ids that make them unique."""

from __future__ import annotations

from datetime import UTC, datetime

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from workers import heartbeat

# A job runs this long after its instant, so the instant has surely passed.
LATE_MS = 50


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 1
    return settings


class ArqScheduler:
    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool

    async def expire_at(self, *, event_id: str, user_id: str, at_ms: int) -> None:
        await self.pool.enqueue_job(
            "expire_entry", event_id, user_id,
            _job_id=f"expire:{event_id}:{user_id}:{at_ms}", _defer_until=_instant(at_ms + LATE_MS),
        )

    async def refresh_status_at(self, *, event_id: str, at_ms: int) -> None:
        await self.pool.enqueue_job(
            "refresh_event_status", event_id,
            _job_id=f"status:{event_id}:{at_ms}", _defer_until=_instant(at_ms + LATE_MS),
        )

    async def workers_alive(self) -> bool:
        return await heartbeat.workers_alive(self.pool)

    async def close(self) -> None:
        await self.pool.aclose()


async def connect_scheduler(url: str) -> ArqScheduler:
    return ArqScheduler(await create_pool(redis_settings(url)))


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
