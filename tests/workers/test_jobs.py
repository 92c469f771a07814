"""The jobs of workers/jobs.py called directly, as arq calls them: `job(ctx, ...)` with ctx {"rt": Runtime}.

Each job is run when it has work, when it has none, twice in a row, and twice at
once (two workers picking up the same firing): the second run must change
nothing, and two at once must have exactly one effect. The data is made over the
real API (in-process, over HTTP) on the real SecantusDB server; only the jobs are
called by hand.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bson import ObjectId

from app.appkeys import SETTINGS
from app.orders.models import OrderState
from app.pubsub import InProcessBroker
from app.runtime import Runtime
from app.timeutil import now_ms
from tests.conftest import make_token
from tests.factories import (
    ACTIVE_SESSIONS,
    create_event,
    create_tickets,
    days_from_now,
    iso,
    on_sale_event,
    ticket_type_input,
)
from tests.workers.support import (
    buy,
    checkout,
    entry_doc,
    event_doc,
    invariant_violations,
    join,
    sample,
    snapshot,
    statuses,
    stuck_order,
    ticket_doc,
)
from workers import jobs

CHECKOUT_EXPIRY = 1
# Concurrent runs of one job in the races below, each on its own pooled connection (as separate
# workers would be), so that they really overlap on the server.
RACERS = 8


def ctx_of(api) -> dict:
    """What the worker's startup puts in ctx: a Runtime on the same database and settings."""
    return {"rt": Runtime(db=api.db, settings=api.app[SETTINGS], broker=InProcessBroker())}


async def warm_connections(db, n: int) -> None:
    """Open `n` pooled connections now, so that `n` concurrent calls do not queue for one."""
    await asyncio.gather(*(db.command("ping") for _ in range(n)))


async def sleep_until(ms: int) -> None:
    await asyncio.sleep(max(0.0, (ms - now_ms()) / 1000) + 0.05)


# --- expire_due_entries ---------------------------------------------------------------------------


async def test_expire_due_entries_expires_an_idle_admission_once_and_admits_the_next_buyer(make_api, organizer):
    api = await make_api(checkout_limit=1, checkout_expiry_seconds=CHECKOUT_EXPIRY)
    ctx = ctx_of(api)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b, c = make_token("buyer-a"), make_token("buyer-b"), make_token("buyer-c")
    await join(api, a, eid, "ADMITTED")
    await join(api, b, eid, "WAITING")
    await join(api, c, eid, "WAITING")

    # Not due yet: the job does nothing.
    assert await jobs.expire_due_entries(ctx, eid) == 0
    assert (await entry_doc(api.db, eid, "buyer-a"))["status"] == "ADMITTED"

    await warm_connections(api.db, RACERS)
    await sleep_until((await entry_doc(api.db, eid, "buyer-a"))["expiresAtUtc"])
    expiries, admissions = sample("ticketing_queue_expiries_total"), sample("ticketing_admissions_total")
    # Several workers run the job for the same entry at the same moment: one expires it, and only
    # that one says so (the job's result and ticketing_job_runs_total{outcome="expired"}).
    results = await asyncio.gather(*(jobs.expire_due_entries(ctx, eid) for _ in range(RACERS)))
    assert await statuses(api.db, eid) == {"buyer-a": "EXPIRED", "buyer-b": "ADMITTED", "buyer-c": "WAITING"}
    assert sample("ticketing_queue_expiries_total") - expiries == 1
    assert sample("ticketing_admissions_total") - admissions == 1
    assert (await event_doc(api.db, eid))["activeCheckouts"] == 1
    assert sorted(results) == [0] * (RACERS - 1) + [1], f"{RACERS} concurrent runs say they expired {results}"

    # Once more, and for a buyer who never joined: nothing changes.
    before = await snapshot(api.db)
    assert await jobs.expire_due_entries(ctx, eid) == 0
    assert await jobs.expire_due_entries(ctx, str(ObjectId())) == 0
    assert await snapshot(api.db) == before
    assert await invariant_violations(api.db, eid, 1) == []


async def test_expire_due_entries_ends_an_idle_checkout_session_once(make_api, organizer):
    api = await make_api(checkout_limit=1, checkout_expiry_seconds=CHECKOUT_EXPIRY)
    ctx = ctx_of(api)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b = make_token("buyer-a"), make_token("buyer-b")
    session = await checkout(api, a, eid)
    await join(api, b, eid, "WAITING")

    await warm_connections(api.db, RACERS)
    await sleep_until((await entry_doc(api.db, eid, "buyer-a"))["expiresAtUtc"])
    expiries = sample("ticketing_queue_expiries_total")
    results = await asyncio.gather(*(jobs.expire_due_entries(ctx, eid) for _ in range(RACERS)))
    assert (await api.db.checkoutSessions.find_one({"_id": ObjectId(session["id"])}))["status"] == "EXPIRED"
    assert await statuses(api.db, eid) == {"buyer-a": "EXPIRED", "buyer-b": "ADMITTED"}
    assert sample("ticketing_queue_expiries_total") - expiries == 1
    before = await snapshot(api.db)
    assert await jobs.expire_due_entries(ctx, eid) == 0
    assert await snapshot(api.db) == before
    assert await invariant_violations(api.db, eid, 1) == []
    assert sorted(results) == [0] * (RACERS - 1) + [1], f"{RACERS} concurrent runs say they expired {results}"


# --- sweep_expired --------------------------------------------------------------------------


async def test_sweep_expired_ends_every_due_entry_once_even_when_two_run_at_once(make_api, organizer):
    api = await make_api(checkout_limit=2, checkout_expiry_seconds=CHECKOUT_EXPIRY)
    ctx = ctx_of(api)
    first, _ = await on_sale_event(api, organizer)
    second = await create_event(api, organizer, title="Second night")
    await create_tickets(api, organizer, second["id"], ticket_type_input())
    e1, e2 = first["id"], second["id"]
    await join(api, make_token("a1"), e1, "ADMITTED")
    await join(api, make_token("a2"), e1, "ADMITTED")
    await checkout(api, make_token("a3"), e2)
    await join(api, make_token("w1"), e1, "WAITING")  # its place lasts QUEUE_EXPIRY: not due

    assert await jobs.sweep_expired(ctx) == 0
    await sleep_until(max([(await entry_doc(api.db, e, u))["expiresAtUtc"] for e, u in ((e1, "a1"), (e1, "a2"), (e2, "a3"))]))
    counts = await asyncio.gather(jobs.sweep_expired(ctx), jobs.sweep_expired(ctx))
    assert sum(counts) == 3, counts
    assert await statuses(api.db, e1) == {"a1": "EXPIRED", "a2": "EXPIRED", "w1": "ADMITTED"}
    assert await statuses(api.db, e2) == {"a3": "EXPIRED"}
    assert await api.db.eventQueue.count_documents(ACTIVE_SESSIONS) == 0
    assert [(await event_doc(api.db, e))["activeCheckouts"] for e in (e1, e2)] == [1, 0]

    before = await snapshot(api.db)
    assert await jobs.sweep_expired(ctx) == 0
    assert await snapshot(api.db) == before
    for e in (e1, e2):
        assert await invariant_violations(api.db, e, 2) == []


# --- refresh_event_status and refresh_sale_statuses ------------------------------------------


async def opening_soon_event(api, organizer: str, in_seconds: float, **ticket_overrides) -> tuple[dict, dict]:
    """An event whose only ticket type's sale opens in `in_seconds` (stored status UPCOMING)."""
    event = await create_event(api, organizer, title=f"Opening {ObjectId()}")
    opens = days_from_now(0) + timedelta(seconds=in_seconds)
    (general,) = await create_tickets(
        api, organizer, event["id"], ticket_type_input(saleStartsAt=iso(opens), **ticket_overrides)
    )
    return event, general


async def test_refresh_event_status_opens_the_sale_at_its_opening_and_is_idempotent(make_api, organizer):
    api = await make_api()
    ctx = ctx_of(api)
    event, general = await opening_soon_event(api, organizer, 1.5)
    eid = event["id"]
    assert (await event_doc(api.db, eid))["status"] == "UPCOMING"
    assert await jobs.refresh_event_status(ctx, eid) == "UPCOMING"  # too early: unchanged
    assert (await event_doc(api.db, eid))["status"] == "UPCOMING"

    await sleep_until((await ticket_doc(api.db, general["id"]))["saleStartsAtUtc"])
    assert await asyncio.gather(jobs.refresh_event_status(ctx, eid), jobs.refresh_event_status(ctx, eid)) == [
        "ON_SALE", "ON_SALE"
    ]
    assert (await event_doc(api.db, eid))["status"] == "ON_SALE"
    before = await snapshot(api.db)
    assert await jobs.refresh_event_status(ctx, eid) == "ON_SALE"
    assert await snapshot(api.db) == before


async def test_refresh_event_status_follows_the_stock(make_api, organizer):
    api = await make_api()
    ctx = ctx_of(api)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=1, maxPerPurchase=1))
    eid = event["id"]
    a = make_token("buyer-a")
    await checkout(api, a, eid)
    await buy(api, a, eid, [(general["id"], 1)], "k1")
    assert await jobs.refresh_event_status(ctx, eid) == "SOLD_OUT"
    assert (await event_doc(api.db, eid))["status"] == "SOLD_OUT"
    # Stock comes back (a recount lowered quantitySold): ON_SALE again.
    await api.db.userTickets.update_many({"eventId": ObjectId(eid)}, {"$set": {"status": "CANCELLED"}})
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$set": {"quantitySold": 0}})
    assert await jobs.refresh_event_status(ctx, eid) == "ON_SALE"
    assert (await event_doc(api.db, eid))["status"] == "ON_SALE"


async def test_refresh_sale_statuses_fixes_every_stale_stored_status_once(make_api, organizer):
    api = await make_api()
    ctx = ctx_of(api)
    opening, general = await opening_soon_event(api, organizer, 2.0)
    live, _ = await on_sale_event(api, organizer)
    cancelled, _ = await on_sale_event(api, organizer)
    await api.ok("CancelEvent", {"eventId": cancelled["id"]}, organizer)
    assert [(await event_doc(api.db, e["id"]))["status"] for e in (opening, live, cancelled)] == [
        "UPCOMING", "ON_SALE", "CANCELLED"
    ]
    assert await jobs.refresh_sale_statuses(ctx) == 0

    await sleep_until((await ticket_doc(api.db, general["id"]))["saleStartsAtUtc"])
    assert await jobs.refresh_sale_statuses(ctx) == 1
    assert [(await event_doc(api.db, e["id"]))["status"] for e in (opening, live, cancelled)] == [
        "ON_SALE", "ON_SALE", "CANCELLED"
    ]
    before = await snapshot(api.db)
    assert await jobs.refresh_sale_statuses(ctx) == 0
    await asyncio.gather(jobs.refresh_sale_statuses(ctx), jobs.refresh_sale_statuses(ctx))
    assert await snapshot(api.db) == before


# --- repair -------------------------------------------------------------------------------


async def quiet_since_the_crash(db, event_id: str) -> None:
    """The crash was a while ago: the sale's queue has been quiet longer than the repair's grace."""
    await db.events.update_one({"_id": ObjectId(event_id)}, {"$set": {"queueActivityAtUtc": now_ms() - 60_000}})


async def crashed_sale(api, organizer: str) -> dict:
    """An event left behind by a crashed API process: a RESERVED order (stock taken, no tickets),
    a PENDING order (stock taken), and a slot counter one too high."""
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=10), ticket_type_input(type="VIP", quantityTotal=5, priceCents=25000)
    )
    eid = event["id"]
    a, b, c = make_token("buyer-a"), make_token("buyer-b"), make_token("buyer-c")
    session_a = await checkout(api, a, eid)
    session_b = await checkout(api, b, eid)
    await checkout(api, c, eid)
    await buy(api, c, eid, [(general["id"], 1)], "c-1")  # a finished purchase, untouched by the repair
    reserved = await stuck_order(
        api.db, event_id=eid, user="buyer-a", session_id=session_a["id"], items=[(general, 2), (vip, 1)],
        state=OrderState.RESERVED, key="a-1",
    )
    pending = await stuck_order(
        api.db, event_id=eid, user="buyer-b", session_id=session_b["id"], items=[(vip, 2)],
        state=OrderState.PENDING, key="b-1",
    )
    await api.db.events.update_one({"_id": ObjectId(eid)}, {"$inc": {"activeCheckouts": 1}})  # a leaked slot
    await quiet_since_the_crash(api.db, eid)
    return {"event_id": eid, "general": general, "vip": vip, "reserved": reserved, "pending": pending}


async def check_repaired(api, sale: dict) -> None:
    eid = sale["event_id"]
    reserved = await api.db.orders.find_one({"_id": ObjectId(sale["reserved"].id)})
    pending = await api.db.orders.find_one({"_id": ObjectId(sale["pending"].id)})
    assert (reserved["state"], pending["state"]) == ("COMPLETED", "FAILED")
    issued = [t async for t in api.db.userTickets.find({"orderId": ObjectId(sale["reserved"].id)})]
    assert sorted(str(t["_id"]) for t in issued) == sorted(t.id for t in sale["reserved"].tickets)
    assert await api.db.userTickets.count_documents({"orderId": ObjectId(sale["pending"].id)}) == 0
    assert (await ticket_doc(api.db, sale["general"]["id"]))["quantitySold"] == 3
    assert (await ticket_doc(api.db, sale["vip"]["id"]))["quantitySold"] == 1
    # buyer-a's purchase completed (entry COMPLETED, slot given back); buyer-b still holds a slot.
    assert await statuses(api.db, eid) == {"buyer-a": "COMPLETED", "buyer-b": "ADMITTED", "buyer-c": "COMPLETED"}
    assert (await event_doc(api.db, eid))["activeCheckouts"] == 1
    assert await invariant_violations(api.db, eid, 5) == []


async def test_repair_finishes_and_undoes_crashed_orders_and_recounts_once(make_api, organizer):
    api = await make_api()
    ctx = ctx_of(api)
    sale = await crashed_sale(api, organizer)

    report = await jobs.repair(ctx)
    assert (report["finished"], report["undone"]) == (1, 1), report
    assert sorted(c.split(" of ")[0] for c in report["corrections"]) == ["activeCheckouts", "quantitySold"], report
    await check_repaired(api, sale)

    before = await snapshot(api.db)
    assert await jobs.repair(ctx) == {"finished": 0, "undone": 0, "checkouts_ended": 0, "corrections": []}
    assert await snapshot(api.db) == before


async def test_repairs_at_once_have_one_effect(make_api, organizer):
    api = await make_api()
    ctx = ctx_of(api)
    sale = await crashed_sale(api, organizer)
    issued_metric = sample("ticketing_tickets_issued_total")
    completed_metric = sample("ticketing_purchases_total", outcome="completed")

    await warm_connections(api.db, RACERS)
    reports = await asyncio.gather(*(jobs.repair(ctx) for _ in range(RACERS)))
    await check_repaired(api, sale)
    assert sample("ticketing_tickets_issued_total") - issued_metric == 3
    assert sample("ticketing_purchases_total", outcome="completed") - completed_metric == 1
    # Each counter was corrected by one of the runs, not several.
    corrections = [c for r in reports for c in r["corrections"]]
    assert len(corrections) == len(set(corrections)) == 2, reports  # VIP's quantitySold, activeCheckouts
    assert sum(r["undone"] for r in reports) == 1, reports


async def test_repairs_at_once_report_the_one_order_they_finished_once(make_api, organizer):
    """The job's report and ticketing_repairs_total count what was done: one order was finished,
    so runs at once report one between them (as they already do for the undone order)."""
    api = await make_api()
    ctx = ctx_of(api)
    sale = await crashed_sale(api, organizer)
    finished_metric = sample("ticketing_repairs_total", kind="order_finished")
    undone_metric = sample("ticketing_repairs_total", kind="order_undone")

    await warm_connections(api.db, RACERS)
    reports = await asyncio.gather(*(jobs.repair(ctx) for _ in range(RACERS)))
    await check_repaired(api, sale)
    assert sum(r["undone"] for r in reports) == 1, reports
    assert sample("ticketing_repairs_total", kind="order_undone") - undone_metric == 1
    assert sum(r["finished"] for r in reports) == 1, reports
    assert sample("ticketing_repairs_total", kind="order_finished") - finished_metric == 1


async def test_repairs_at_once_never_leave_fewer_slots_counted_than_admitted_buyers(make_api, organizer):
    """A leaked slot (the counter one above the ADMITTED entries) seen by several repair runs at once:
    one corrects it, and the counter must end equal to the ADMITTED entries, never below (a counter
    below them lets more than CHECKOUT_LIMIT buyers hold a slot: DESIGN invariant 2).

    The runs race, so the scene is played several times (a new event each time)."""
    api = await make_api(checkout_limit=2)
    ctx = ctx_of(api)
    racers = 3 * RACERS
    await warm_connections(api.db, racers)
    outcomes = []
    for round_ in range(8):
        event, _ = await on_sale_event(api, organizer)
        eid = event["id"]
        await join(api, make_token(f"holder-{round_}"), eid, "ADMITTED")
        await api.db.events.update_one({"_id": ObjectId(eid)}, {"$inc": {"activeCheckouts": 1}})  # the leak
        await quiet_since_the_crash(api.db, eid)
        reports = await asyncio.gather(*(jobs.repair(ctx) for _ in range(racers)))
        counted = (await event_doc(api.db, eid))["activeCheckouts"]
        admitted = await api.db.eventQueue.count_documents({"eventId": ObjectId(eid), "status": "ADMITTED"})
        corrections = [c for r in reports for c in r["corrections"] if eid in c]
        outcomes.append({"activeCheckouts": counted, "ADMITTED": admitted, "corrections": corrections})
        if counted != admitted:
            break
    assert all(o["activeCheckouts"] == o["ADMITTED"] == 1 for o in outcomes), outcomes


async def test_the_cron_repair_leaves_a_busy_sales_counters_alone(make_api, organizer):
    """During a rush a step's two writes can be seconds apart (a slot counted, its entry not yet
    ADMITTED): a recount between them would take a slot that is in use and let one buyer too many
    in. The cron's repair recounts only once the sale's queue has been quiet for its grace period."""
    api = await make_api(checkout_limit=2)
    ctx = ctx_of(api)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    await join(api, make_token("holder"), eid, "ADMITTED")
    # As if a second buyer's slot were counted and its entry not written yet.
    await api.db.events.update_one({"_id": ObjectId(eid)}, {"$inc": {"activeCheckouts": 1}})

    assert await jobs.repair(ctx) == {"finished": 0, "undone": 0, "checkouts_ended": 0, "corrections": []}
    assert (await event_doc(api.db, eid))["activeCheckouts"] == 2

    await quiet_since_the_crash(api.db, eid)  # nothing came of it for longer than the grace: a leak
    report = await jobs.repair(ctx)
    assert report["corrections"] == [f"activeCheckouts of {eid}: 2 -> 1"], report
    assert (await event_doc(api.db, eid))["activeCheckouts"] == 1
