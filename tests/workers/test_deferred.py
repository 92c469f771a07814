"""Deferred jobs end to end: the API created with REDIS_URL schedules them through ArqScheduler on the
real Redis, an arq Worker built from worker_settings runs them (in this process), and nobody calls the
API meanwhile. Expiry of idle buyers, and the stored sale status following the sale.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from arq import create_pool
from bson import ObjectId

from app.orders.models import OrderState
from app.timeutil import now_ms
from tests.conftest import make_token
from tests.factories import on_sale_event, ticket_type_input
from tests.sale.test_subscriptions import connector_of, subscribe
from tests.workers.support import (
    buy,
    checkout,
    drained,
    dormant_crons,
    entry_doc,
    event_doc,
    eventually,
    invariant_violations,
    job_runs,
    join,
    make_settings,
    running_workers,
    statuses,
    stuck_order,
    ticket_doc,
)
from tests.workers.test_jobs import opening_soon_event, quiet_since_the_crash
from workers.scheduler import LATE_MS, expiry_job_id, redis_settings

# "within 2 s of its expiresAt" / "within ~2 s of the opening"
ON_TIME_MS = 2000


async def job_exists(redis_url: str, job_id: str) -> bool:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return bool(await client.exists(f"arq:job:{job_id}"))
    finally:
        await client.aclose()


async def test_an_idle_buyer_is_expired_by_the_worker_on_time_and_the_next_one_admitted(
    make_api, mongo_uri, redis_url, organizer
):
    overrides = {"redis_url": redis_url, "checkout_limit": 1, "checkout_expiry_seconds": 1}
    api = await make_api(**overrides)
    async with running_workers(make_settings(mongo_uri, **overrides)) as workers:
        event, _ = await on_sale_event(api, organizer)
        eid = event["id"]
        a, b, c = make_token("buyer-a"), make_token("buyer-b"), make_token("buyer-c")
        await join(api, a, eid, "ADMITTED")
        await join(api, b, eid, "WAITING")
        await join(api, c, eid, "WAITING")
        a_doc = await entry_doc(api.db, eid, "buyer-a")
        assert await job_exists(redis_url, expiry_job_id(eid, a_doc["expiresAtUtc"]))

        async with subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, b) as b_updates:
            _, first = await b_updates.next_value("queueUpdates")
            assert first["status"] == "WAITING"
            # Nobody calls the API: only the worker's deferred job can move the queue.
            seen = await b_updates.until("queueUpdates", lambda e: e["status"] == "ADMITTED", timeout=5)
            assert seen[-1][1]["position"] is None

        a_doc = await entry_doc(api.db, eid, "buyer-a")
        b_doc = await entry_doc(api.db, eid, "buyer-b")
        assert a_doc["status"] == "EXPIRED"
        late = a_doc["endedAtUtc"] - a_doc["expiresAtUtc"]
        assert 0 <= late <= ON_TIME_MS, f"buyer-a expired {late} ms after its expiresAt"
        assert b_doc["status"] == "ADMITTED" and b_doc["admittedAtUtc"] - a_doc["endedAtUtc"] < 500

        # buyer-b starts checkout and goes idle too: the session expires on time, buyer-c gets the slot.
        session = (await api.ok("StartCheckout", {"eventId": eid}, b))["session"]
        b_doc = await entry_doc(api.db, eid, "buyer-b")
        assert await job_exists(redis_url, expiry_job_id(eid, b_doc["expiresAtUtc"]))

        async def b_expired():
            return (await entry_doc(api.db, eid, "buyer-b"))["status"] == "EXPIRED"

        await eventually(b_expired, 5, "buyer-b's session to expire")
        b_doc = await entry_doc(api.db, eid, "buyer-b")
        late = b_doc["endedAtUtc"] - b_doc["expiresAtUtc"]
        assert 0 <= late <= ON_TIME_MS, f"buyer-b's session expired {late} ms after its expiresAt"

        async def session_expired():  # the entry is ended first, then its session
            return (await api.db.checkoutSessions.find_one({"_id": ObjectId(session["id"])}))["status"] == "EXPIRED"

        await eventually(session_expired, 1, "buyer-b's session to be marked EXPIRED")

        async def c_admitted():  # the expiry's next steps: give the slot back, admit the next buyer
            return (await entry_doc(api.db, eid, "buyer-c"))["status"] == "ADMITTED"

        await eventually(c_admitted, 1, "buyer-c's admission after buyer-b's expiry")
        assert await invariant_violations(api.db, eid, 1) == []
        assert sum(w.jobs_failed for w in workers) == 0


async def test_the_stored_status_opens_on_time_and_sells_out_with_the_last_ticket(
    make_api, mongo_uri, redis_url, organizer
):
    overrides = {"redis_url": redis_url}
    api = await make_api(**overrides)
    async with running_workers(make_settings(mongo_uri, **overrides)) as workers:
        event, general = await opening_soon_event(api, organizer, 2.0, quantityTotal=1, maxPerPurchase=1)
        eid = event["id"]
        opens_at = (await ticket_doc(api.db, general["id"]))["saleStartsAtUtc"]
        assert (await event_doc(api.db, eid))["status"] == "UPCOMING"
        assert await job_exists(redis_url, f"status:{eid}:{opens_at}")

        async def stored_on_sale():
            return (await event_doc(api.db, eid))["status"] == "ON_SALE"

        refreshes = job_runs("refresh_event_status", "ok")
        await eventually(stored_on_sale, 6, "the stored status to become ON_SALE", interval=0.02)
        seen_at = now_ms()
        assert opens_at <= seen_at <= opens_at + ON_TIME_MS, f"ON_SALE stored {seen_at - opens_at} ms after the opening"

        async def counted_once():  # the job deferred to the opening did it; it counts its run just after the write
            return job_runs("refresh_event_status", "ok") - refreshes == 1

        await eventually(counted_once, 2, "the deferred refresh to count one run")
        listed = (await api.data("Events", {"filter": {"status": "ON_SALE"}, "first": 10}))["events"]["edges"]
        assert [e["node"]["id"] for e in listed] == [eid]

        a = make_token("buyer-a")
        await checkout(api, a, eid)
        await buy(api, a, eid, [(general["id"], 1)], "k1")
        assert (await event_doc(api.db, eid))["status"] == "SOLD_OUT"
        assert (await api.data("Event", {"id": eid}))["event"]["status"] == "SOLD_OUT"
        assert sum(w.jobs_failed for w in workers) == 0


async def test_stock_given_back_by_the_repair_puts_the_event_back_on_sale(make_api, mongo_uri, redis_url, organizer):
    """A purchase crashed holding the last ticket: the event reads SOLD_OUT (the cron refresh stores it).
    The repair job undoes the order and recounts quantitySold down: the stock is back, so the stored
    status is ON_SALE again, once the repair job has run."""
    overrides = {"redis_url": redis_url}
    api = await make_api(**overrides)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=2, maxPerPurchase=2))
    eid = event["id"]
    a, c = make_token("buyer-a"), make_token("buyer-c")
    await checkout(api, a, eid)
    await buy(api, a, eid, [(general["id"], 1)], "k1")
    session = await checkout(api, c, eid)
    await stuck_order(api.db, event_id=eid, user="buyer-c", session_id=session["id"], items=[(general, 1)],
                      state=OrderState.PENDING, key="c-1")
    await quiet_since_the_crash(api.db, eid)
    assert (await api.data("Event", {"id": eid}))["event"]["status"] == "SOLD_OUT"

    settings = make_settings(mongo_uri, **overrides)
    pool = await create_pool(redis_settings(redis_url))
    try:
        # Crons by name only: the wall clock's repair (second 40) must not undo the order before the refresh.
        async with running_workers(settings, cron_jobs=dormant_crons(settings)) as workers:
            await pool.enqueue_job("cron:refresh_sale_statuses", _job_id="refresh-now")
            await drained(workers, after_ms=0)
            assert (await event_doc(api.db, eid))["status"] == "SOLD_OUT"

            await pool.enqueue_job("cron:repair", _job_id="repair-now")
            await drained(workers, after_ms=0)
            await asyncio.sleep(LATE_MS / 1000)
            assert sum(w.jobs_failed for w in workers) == 0
            assert (await ticket_doc(api.db, general["id"]))["quantitySold"] == 1, workers
            assert (await api.data("Event", {"id": eid}))["event"]["status"] == "ON_SALE"
            assert await statuses(api.db, eid) == {"buyer-a": "COMPLETED", "buyer-c": "ADMITTED"}
            assert await invariant_violations(api.db, eid, 5) == []
            assert sum(w.jobs_failed for w in workers) == 0
            assert (await event_doc(api.db, eid))["status"] == "ON_SALE", "stored status after the repair job"
    finally:
        await pool.aclose()
