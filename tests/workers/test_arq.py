"""The jobs for real through arq: enqueued on the real Redis with arq's pool, run by arq Workers built
from workers.settings.worker_settings (in this process, on this event loop), effects checked in the
database. Two workers on one Redis run a cron firing once, and two runs of the same job at once have
one effect.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from arq import create_pool
from bson import ObjectId

from tests.conftest import make_token
from tests.factories import on_sale_event
from tests.workers.support import (
    QUEUE,
    dormant_crons,
    drained,
    entry_doc,
    event_doc,
    eventually,
    invariant_violations,
    job_runs,
    join,
    make_settings,
    retimed_crons,
    running_workers,
    sample,
    statuses,
    ticket_doc,
)
from tests.workers.test_jobs import check_repaired, crashed_sale, opening_soon_event
from workers.scheduler import EXPIRY_BUCKET_MS, LATE_MS, ArqScheduler, redis_settings
from workers.settings import worker_settings


def instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000).astimezone()


async def test_every_job_runs_through_an_arq_worker(make_api, mongo_uri, redis_url, organizer):
    small = await make_api(checkout_limit=1, checkout_expiry_seconds=3)
    api = await make_api()
    # Work for each job: an idle admission about to expire, a sale about to open, a crashed sale.
    first, _ = await on_sale_event(small, organizer)
    e1 = first["id"]
    await join(small, make_token("buyer-x"), e1, "ADMITTED")
    await join(small, make_token("buyer-y"), e1, "WAITING")
    opening, general = await opening_soon_event(api, organizer, 3.0)
    sale = await crashed_sale(api, organizer)
    expires_at = (await entry_doc(api.db, e1, "buyer-x"))["expiresAtUtc"]
    opens_at = (await ticket_doc(api.db, general["id"]))["saleStartsAtUtc"]
    expired_before = job_runs("expire_due_entries", "expired")

    pool = await create_pool(redis_settings(redis_url))
    try:
        assert await pool.enqueue_job("expire_due_entries", e1, _defer_until=instant(expires_at + LATE_MS))
        assert await pool.enqueue_job("refresh_event_status", opening["id"], _defer_until=instant(opens_at + LATE_MS))
        # The cron jobs, run now (arq names them cron:<name>); their schedule is kept out of the way.
        for name in ("sweep_expired", "refresh_sale_statuses", "repair"):
            assert await pool.enqueue_job(f"cron:{name}", _job_id=f"test:{name}")
        settings = make_settings(mongo_uri, redis_url=redis_url)

        async with running_workers(settings, cron_jobs=dormant_crons(settings)) as (worker,):
            await drained([worker], after_ms=max(expires_at, opens_at) + LATE_MS + 100)
        assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (5, 0, 0), worker
    finally:
        await pool.aclose()

    assert job_runs("expire_due_entries", "expired") - expired_before == 1
    assert await statuses(api.db, e1) == {"buyer-x": "EXPIRED", "buyer-y": "ADMITTED"}
    assert (await event_doc(api.db, e1))["activeCheckouts"] == 1
    assert (await event_doc(api.db, opening["id"]))["status"] == "ON_SALE"
    await check_repaired(api, sale)


async def test_the_scheduler_queues_one_job_per_instant(redis_url):
    pool = await create_pool(redis_settings(redis_url))
    scheduler = ArqScheduler(pool)
    try:
        # An instant just past a bucket's start: the bucket ends EXPIRY_BUCKET_MS - 1 later.
        later = (int(datetime.now().timestamp() * 1000) // EXPIRY_BUCKET_MS + 120) * EXPIRY_BUCKET_MS + 1
        bucket_end = later + EXPIRY_BUCKET_MS - 1
        # The same expiry scheduled twice, by this process and by another (e.g. two API processes),
        # and entries expiring later in the same bucket: one job.
        for scheduler_of_process in (scheduler, ArqScheduler(pool)):
            for at in (later, later + 7, bucket_end):
                await scheduler_of_process.expire_at(event_id="e1", at_ms=at)
            await scheduler_of_process.refresh_status_at(event_id="e1", at_ms=later)
        await scheduler.refresh_status_at(event_id="e1", at_ms=later + 1000)
        assert await pool.zcard(QUEUE) == 3
        jobs = {j.function: j for j in await pool.queued_jobs()}
        assert set(jobs) == {"expire_due_entries", "refresh_event_status"}
        assert jobs["expire_due_entries"].args == ("e1",)
        assert jobs["expire_due_entries"].score == bucket_end + LATE_MS  # deferred to the bucket's end, just after it
        await scheduler.expire_at(event_id="e1", at_ms=bucket_end + 1)  # the next bucket: a job of its own
        assert await pool.zcard(QUEUE) == 4
    finally:
        await scheduler.close()


async def test_two_workers_run_a_cron_firing_once(mongo_uri, redis_url):
    settings = make_settings(mongo_uri, redis_url=redis_url)
    crons = worker_settings(settings)["cron_jobs"]
    names = ["sweep_expired", "refresh_sale_statuses", "repair"]
    assert {c.name: c.unique for c in crons} == {f"cron:{n}": True for n in names}
    quiet = dormant_crons(settings)  # no start-up run: only the timed firing is counted
    before = {n: job_runs(n, "ok") for n in names}

    async with running_workers(settings, settings, cron_jobs=quiet) as (w1, w2):
        # Now that both are up, every cron fires at the same second, about two seconds from now,
        # on both workers (the same schedule as in worker_settings, but sooner).
        target = (datetime.now() + timedelta(seconds=2)).second
        for worker in (w1, w2):
            worker.cron_jobs = retimed_crons(crons, target)

        async def all_ran() -> bool:
            return all(job_runs(n, "ok") > before[n] for n in names)

        await eventually(all_ran, 8, "every cron job to run once")
        await asyncio.sleep(1.5)  # time for a second run, if there were one
        runs = {n: job_runs(n, "ok") - before[n] for n in names}
        assert runs == {n: 1 for n in names}, runs
        assert w1.jobs_complete + w2.jobs_complete == 3, (w1, w2)
        assert w1.jobs_failed + w2.jobs_failed == 0


async def test_two_runs_of_the_expiry_job_for_one_entry_expire_it_once(make_api, mongo_uri, redis_url, organizer):
    api = await make_api(checkout_limit=1, checkout_expiry_seconds=1)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    await join(api, make_token("buyer-a"), eid, "ADMITTED")
    await join(api, make_token("buyer-b"), eid, "WAITING")
    await join(api, make_token("buyer-c"), eid, "WAITING")
    expires_at = (await entry_doc(api.db, eid, "buyer-a"))["expiresAtUtc"]
    expired, nothing = job_runs("expire_due_entries", "expired"), job_runs("expire_due_entries", "nothing")
    expiries, admissions = sample("ticketing_queue_expiries_total"), sample("ticketing_admissions_total")

    pool = await create_pool(redis_settings(redis_url))
    try:
        # Two API processes each scheduled this expiry, their clocks apart by a bucket: two jobs, same entry.
        for at in (expires_at, expires_at + EXPIRY_BUCKET_MS):
            await ArqScheduler(pool).expire_at(event_id=eid, at_ms=at)
        assert await pool.zcard(QUEUE) == 2
        settings = make_settings(mongo_uri, redis_url=redis_url, checkout_limit=1, checkout_expiry_seconds=60)
        async with running_workers(settings, settings, cron_jobs=dormant_crons(settings)) as workers:
            await drained(workers, after_ms=expires_at + 2 * EXPIRY_BUCKET_MS + LATE_MS + 100)
    finally:
        await pool.aclose()

    assert sum(w.jobs_failed for w in workers) == 0, workers
    assert sum(w.jobs_complete for w in workers) == 2, workers
    # One effect: buyer-a expired once, one slot given back, the next buyer admitted once.
    assert await statuses(api.db, eid) == {"buyer-a": "EXPIRED", "buyer-b": "ADMITTED", "buyer-c": "WAITING"}
    assert (await event_doc(api.db, eid))["activeCheckouts"] == 1
    assert await invariant_violations(api.db, eid, 1) == []
    assert sample("ticketing_queue_expiries_total") - expiries == 1
    assert sample("ticketing_admissions_total") - admissions == 1
    # (Which of the two runs reports the expiry is checked deterministically in test_jobs.py.)
    assert job_runs("expire_due_entries", "expired") - expired + job_runs("expire_due_entries", "nothing") - nothing == 2


async def test_two_repair_runs_at_once_through_arq_have_one_effect(make_api, mongo_uri, redis_url, organizer):
    api = await make_api()
    sale = await crashed_sale(api, organizer)
    kinds = ("order_undone", "quantity_sold", "active_checkouts")
    before = {k: sample("ticketing_repairs_total", kind=k) for k in kinds}
    runs = job_runs("repair", "ok")
    pool = await create_pool(redis_settings(redis_url))
    try:
        for n in (1, 2):  # e.g. a cron firing and an operator's manual run
            assert await pool.enqueue_job("cron:repair", _job_id=f"repair-now-{n}")
        settings = make_settings(mongo_uri, redis_url=redis_url)
        async with running_workers(settings, settings, cron_jobs=dormant_crons(settings)) as workers:
            await drained(workers)
    finally:
        await pool.aclose()
    assert sum(w.jobs_failed for w in workers) == 0, workers
    assert job_runs("repair", "ok") - runs == 2
    await check_repaired(api, sale)
    assert await api.db.userTickets.count_documents({"orderId": ObjectId(sale["reserved"].id)}) == 3
    # One undo, one correction of each counter, between the two runs.
    assert {k: sample("ticketing_repairs_total", kind=k) - before[k] for k in kinds} == {k: 1 for k in kinds}
