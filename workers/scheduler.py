"""The `Scheduler` of app.runtime on arq: deferred jobs with ids that make them unique."""

from __future__ import annotations

from datetime import UTC, datetime

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from workers import heartbeat

# A job runs this long after its instant, so the instant has surely passed.
LATE_MS = 50
# Expiries are checked per event, for a bucket of instants at a time: the buyers admitted or
# joined together share one job. One job per entry cost a rush ~350 enqueues, each five round
# trips to Redis, and held every group admission for half a second.
EXPIRY_BUCKET_MS = 500
# Job ids remembered (so as not to queue them again) before the past ones are forgotten.
REMEMBERED = 10_000


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 1
    return settings


class ArqScheduler:
    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool
        self._queued: dict[str, int] = {}  # expiry job ids this process queued, and their instants

    async def expire_at(self, *, event_id: str, at_ms: int) -> None:
        bucket = expiry_instant(at_ms)
        job_id = expiry_job_id(event_id, at_ms)
        if job_id in self._queued:
            return
        if len(self._queued) >= REMEMBERED:
            self._forget_past()
        self._queued[job_id] = bucket
        try:
            # Queued once across processes too: arq refuses a second job with the same id.
            await self.pool.enqueue_job(
                "expire_due_entries", event_id, _job_id=job_id, _defer_until=_instant(bucket + LATE_MS))
        except BaseException:
            del self._queued[job_id]
            raise

    async def refresh_status_at(self, *, event_id: str, at_ms: int) -> None:
        await self.pool.enqueue_job(
            "refresh_event_status", event_id,
            _job_id=f"status:{event_id}:{at_ms}", _defer_until=_instant(at_ms + LATE_MS),
        )

    def _forget_past(self) -> None:
        now = int(datetime.now(UTC).timestamp() * 1000)
        self._queued = {job: at for job, at in self._queued.items() if at > now}

    async def workers_alive(self) -> bool:
        return await heartbeat.workers_alive(self.pool)

    async def close(self) -> None:
        await self.pool.aclose()


def expiry_instant(at_ms: int) -> int:
    """The end of the bucket of `at_ms`: every expiry in the bucket is due then."""
    return -(-at_ms // EXPIRY_BUCKET_MS) * EXPIRY_BUCKET_MS


def expiry_job_id(event_id: str, at_ms: int) -> str:
    """The id of the job that expires the event's entries due by `at_ms` (and the rest of its bucket)."""
    return f"expire:{event_id}:{expiry_instant(at_ms)}"


async def connect_scheduler(url: str) -> ArqScheduler:
    return ArqScheduler(await create_pool(redis_settings(url)))


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
