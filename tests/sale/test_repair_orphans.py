"""Issue 10, finding 8: a purchase whose order COMPLETED but whose ending was cut off before it
completed the buyer's entry (and with it the ACTIVE session) leaves the buyer holding a slot. The
repair ends that checkout as the purchase would have, once, beside a live ending too.

The crash is made on the real purchase path: the ending's step after the order's completion
(`queue.complete_admissions`) blows up, as a process killed there would stop.
"""

from __future__ import annotations

import asyncio

from bson import ObjectId

from app.flows.orphans import end_orphaned_checkouts
from app.flows.repair import repair
from app.queue import service as queue_service
from app.timeutil import now_ms
from tests.conftest import make_token
from tests.factories import buy, buy_input, checkout, on_sale_event
from tests.sale.test_repair import SETTLE, entry_status, slot_counts, snapshot


async def crash(*args, **kwargs):
    raise RuntimeError("process killed between the order's completion and its entry's")


async def orphan(api, monkeypatch, token: str, event_id: str, ticket_type_id: str, key: str) -> str:
    """A real purchase cut off after its order COMPLETED; the order's id."""
    monkeypatch.setattr(queue_service, "complete_admissions", crash)
    body = await api.op("PurchaseTickets", buy_input(event_id, [(ticket_type_id, 1)], key), token)
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR", body
    (order,) = [d async for d in api.db.orders.find({"idempotencyKey": key})]
    assert order["state"] == "COMPLETED"
    monkeypatch.undo()
    return str(order["_id"])


async def session_record(api, session_id: str) -> dict | None:
    return await api.db.checkoutSessions.find_one({"_id": ObjectId(session_id)})


async def test_a_completed_purchase_cut_off_before_its_entry_has_its_checkout_ended(
    make_api, organizer, monkeypatch,
):
    api = await make_api(checkout_limit=2)
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    eid = event["id"]
    cut, again, waiting, behind = (make_token(u) for u in ("cut", "again", "waiting", "behind"))
    # `again` bought in an earlier checkout and is back in a new one: that COMPLETED order is not this session's.
    await checkout(api, again, eid)
    await buy(api, again, eid, [(general["id"], 1)], key="earlier")
    cut_session = await checkout(api, cut, eid)
    again_session = await checkout(api, again, eid)
    for token in (waiting, behind):
        assert (await api.ok("JoinQueue", {"eventId": eid}, token))["entry"]["status"] == "WAITING"
    order_id = await orphan(api, monkeypatch, cut, eid, general["id"], "cut-key")
    # What the crash left: a paid buyer holding a slot in an open checkout, the queue stuck behind.
    assert await entry_status(api, eid, cut) == "ADMITTED"
    assert await session_record(api, cut_session["id"]) is None
    assert await slot_counts(api, eid) == (2, 2)

    # With the normal grace, an ending that completed a moment ago is left to its own process.
    fresh = await repair(rt, settle_seconds=SETTLE)
    assert fresh.checkouts_ended == 0 and await entry_status(api, eid, cut) == "ADMITTED"

    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert report.checkouts_ended == 1 and report.corrections == [], report
    assert await entry_status(api, eid, cut) == "COMPLETED"
    assert (await session_record(api, cut_session["id"]))["status"] == "COMPLETED"
    # The slot went on, once, in seq order; the buyer back in a new checkout kept theirs.
    assert await entry_status(api, eid, again) == "ADMITTED"
    assert await session_record(api, again_session["id"]) is None
    assert await entry_status(api, eid, waiting) == "ADMITTED"
    assert await entry_status(api, eid, behind) == "WAITING"
    assert await slot_counts(api, eid) == (2, 2)
    # The checkout is over: no second purchase in it; the cut-off purchase's retry gets its order.
    more = await api.mutate("PurchaseTickets", buy_input(eid, [(general["id"], 2)], "more"), cut)
    assert [e["code"] for e in more["errors"]] == ["NO_ACTIVE_CHECKOUT"]
    replay = await buy(api, cut, eid, [(general["id"], 1)], key="cut-key")
    assert replay["id"] == order_id and len(replay["tickets"]) == 1

    before = await snapshot(api)
    again_report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert (again_report.checkouts_ended, again_report.corrections) == (0, [])
    assert await snapshot(api) == before


async def test_the_repair_and_a_live_ending_of_one_orphan_free_its_slot_once(make_api, organizer, monkeypatch):
    """A slow ending completing the entry while the repair ends the same checkout: one of them
    completes it and hands the slot on; the other changes nothing (else two buyers get one slot)."""
    api = await make_api(checkout_limit=2)
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    eid = event["id"]
    cut, holder = make_token("cut"), make_token("holder")
    session = await checkout(api, cut, eid)
    await checkout(api, holder, eid)
    waiting = [make_token(f"waiting-{i}") for i in range(2)]
    for token in waiting:
        assert (await api.ok("JoinQueue", {"eventId": eid}, token))["entry"]["status"] == "WAITING"
    await orphan(api, monkeypatch, cut, eid, general["id"], "k")

    ended = await asyncio.gather(
        end_orphaned_checkouts(rt, event_id=eid, completed_before=now_ms() + 1),
        queue_service.complete_admissions(rt, event_id=eid, completions=[queue_service.Completion("cut", session["id"])]),
        end_orphaned_checkouts(rt, event_id=eid, completed_before=now_ms() + 1),
    )
    assert sum(ended) == 1, ended
    assert await entry_status(api, eid, cut) == "COMPLETED"
    assert [await entry_status(api, eid, t) for t in waiting] == ["ADMITTED", "WAITING"]
    assert await slot_counts(api, eid) == (2, 2)
