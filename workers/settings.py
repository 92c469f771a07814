"""arq's WorkerSettings: which jobs, which crons, and the runtime each job gets in `ctx`.

Run with `python -m app worker` (REDIS_URL and MONGODB_URI set). Cron jobs are
unique per firing (arq keys them by name and time), so any number of workers
run each once.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from arq import cron, func

from app import db as database
from app.config import Settings
from app.pubsub import RedisBroker
from app.runtime import Runtime
from workers import heartbeat, jobs
from workers.scheduler import ArqScheduler, redis_settings

log = logging.getLogger("workers")


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for arq's Worker, for these settings."""
    if not settings.redis_url or not settings.mongodb_uri:
        raise RuntimeError("the worker needs REDIS_URL and MONGODB_URI")

    async def startup(ctx: dict) -> None:
        client = database.connect(settings.mongodb_uri)
        db = database.get_database(client, settings.mongodb_uri)
        await database.ensure_indexes(db)
        broker = RedisBroker(settings.redis_url)
        await broker.start()
        ctx.update(mongo=client, broker=broker)
        ctx["rt"] = Runtime(db=db, settings=settings, broker=broker, scheduler=ArqScheduler(ctx["redis"]))
        await heartbeat.beat(ctx["redis"])  # alive from the moment it says "ready"
        ctx["heartbeat"] = asyncio.create_task(heartbeat.beat_forever(ctx["redis"]), name="worker heartbeat")
        log.info("worker ready")

    async def shutdown(ctx: dict) -> None:
        ctx["heartbeat"].cancel()
        with suppress(asyncio.CancelledError):
            await ctx["heartbeat"]
        await ctx["broker"].close()
        await ctx["mongo"].close()

    return {
        "functions": [
            func(jobs.expire_due_entries, keep_result=0, max_tries=5),
            func(jobs.refresh_event_status, keep_result=0, max_tries=5),
        ],
        "cron_jobs": [
            cron(jobs.sweep_expired, second=0, unique=True, run_at_startup=True),
            cron(jobs.refresh_sale_statuses, second=20, unique=True),
            cron(jobs.repair, second=40, unique=True, timeout=120),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(settings.redis_url),
        "poll_delay": 0.2,
        "handle_signals": True,
        "health_check_interval": 10,
    }
