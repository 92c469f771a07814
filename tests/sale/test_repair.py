"""app.flows.repair (DESIGN invariant 7): a crash between the steps of a purchase loses nothing.

Crashes are simulated by writing what a purchase that stopped midway leaves
behind: an order document built with the order model exactly as the
purchase writes it (planned tickets, request hash, session), with the stock
taken through the same guarded counter; and, for the same two points, by
making the real purchase path blow up after the step in question. The repair
is called directly on the running app's runtime.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from bson import ObjectId

from app.orders import repository as order_repo
from app.orders import service as orders_service
from app.orders.models import Order, OrderState
from app.flows.repair import repair, repair_counters, repair_orders
from app.timeutil import now_ms
from tests.api_client import ApiClient
from tests.conftest import make_token
from tests.factories import stuck_order, on_sale_event, ticket_type_input
from tests.factories import buy, buy_input, checkout, codes, gate_staff

SETTLE = 0.1


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def quiet_repair_log(caplog):
    caplog.set_level(logging.CRITICAL, logger="app.repair")










async def entry_status(api: ApiClient, event_id: str, token: str) -> str:
    return (await api.data("QueuePosition", {"eventId": event_id}, token))["queuePosition"]["status"]


async def sold(api: ApiClient, ticket_type_id: str) -> int:
    return (await api.db.eventTickets.find_one({"_id": ObjectId(ticket_type_id)}))["quantitySold"]


async def issued_for(api: ApiClient, order_id: str) -> list[dict]:
    return [d async for d in api.db.userTickets.find({"orderId": ObjectId(order_id)})]


async def order_doc(api: ApiClient, order_id: str) -> dict:
    return await api.db.orders.find_one({"_id": ObjectId(order_id)})


async def slot_counts(api: ApiClient, event_id: str) -> tuple[int, int]:
    event = await api.db.events.find_one({"_id": ObjectId(event_id)})
    admitted = await api.db.eventQueue.count_documents({"eventId": ObjectId(event_id), "status": "ADMITTED"})
    return event["activeCheckouts"], admitted


async def snapshot(api: ApiClient) -> dict[str, list[dict]]:
    names = ("events", "eventTickets", "eventQueue", "checkoutSessions", "orders", "userTickets")
    return {n: [d async for d in api.db[n].find({}).sort("_id", 1)] for n in names}


# --- (a) an order stuck RESERVED is finished, its tickets issued exactly once ------------------------------


async def test_a_reserved_order_is_finished_once(make_api, organizer):
    api = await make_api(checkout_limit=1)
    rt = api.runtime
    event, (general, vip) = await on_sale_event(api, organizer, ticket_type_input(), ticket_type_input(type="VIP"))
    buyer, next_buyer = make_token("buyer-1"), make_token("buyer-2")
    session = await checkout(api, buyer, event["id"])
    assert (await api.ok("JoinQueue", {"eventId": event["id"]}, next_buyer))["entry"]["status"] == "WAITING"
    items = [(general, 2), (vip, 1)]
    order = await stuck_order(api.db, event_id=event["id"], user="buyer-1", session_id=session["id"], items=items,
                              state=OrderState.RESERVED, key="crashed")
    assert await sold(api, general["id"]) == 2 and await issued_for(api, order.id) == []

    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert (report.orders_finished, report.orders_undone) == (1, 0)
    assert report.corrections == []  # the stock was already counted for these tickets
    tickets = await issued_for(api, order.id)
    planned = {t.id: t for t in order.tickets}
    assert {str(t["_id"]) for t in tickets} == set(planned)
    for t in tickets:
        assert t["ticketNumber"] == planned[str(t["_id"])].ticket_number
        assert t["confirmationCode"] == planned[str(t["_id"])].confirmation_code
        assert t["status"] == "VALID" and t["userId"] == "buyer-1"
    assert (await order_doc(api, order.id))["state"] == "COMPLETED"
    assert await sold(api, general["id"]) == 2 and await sold(api, vip["id"]) == 1
    # The checkout closed as after a normal purchase; the slot went to the next buyer.
    assert (await api.db.checkoutSessions.find_one({"_id": ObjectId(session["id"])}))["status"] == "COMPLETED"
    assert await entry_status(api, event["id"], buyer) == "COMPLETED"
    assert await entry_status(api, event["id"], next_buyer) == "ADMITTED"
    assert await slot_counts(api, event["id"]) == (1, 1)

    # Again: nothing more to do, nothing issued twice.
    before = await snapshot(api)
    again = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert (again.orders_finished, again.orders_undone, again.corrections) == (0, 0, [])
    assert await snapshot(api) == before

    # The buyer's retry gets the finished order and its tickets, and a scan works.
    replay = await buy(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 1)], key="crashed")
    assert replay["id"] == order.id and {t["id"] for t in replay["tickets"]} == set(planned)
    gate = await gate_staff(api, organizer, event["id"], "g")
    scan = await api.ok("CheckInTicket", {"confirmationCode": tickets[0]["confirmationCode"]}, gate)
    assert scan["ticket"]["status"] == "USED"


async def test_two_repairs_at_once_issue_the_tickets_once(api, organizer):
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(maxPerPurchase=4))
    stuck = []
    for i in range(3):
        token = make_token(f"buyer-{i}")
        session = await checkout(api, token, event["id"])
        stuck.append(await stuck_order(api.db, event_id=event["id"], user=f"buyer-{i}", session_id=session["id"],
                                       items=[(general, 4)], state=OrderState.RESERVED, key=f"k{i}"))
    reports = await asyncio.gather(
        *(repair(rt, grace_ms=0, settle_seconds=SETTLE) for _ in range(2)), return_exceptions=True
    )
    crashed = [r for r in reports if isinstance(r, BaseException)]
    assert not crashed, f"a repair run failed: {crashed[0]!r}"
    assert sum(r.orders_undone for r in reports) == 0
    assert sum(r.orders_finished for r in reports) >= 3
    for order in stuck:
        tickets = await issued_for(api, order.id)
        assert sorted(str(t["_id"]) for t in tickets) == sorted(t.id for t in order.tickets)
        stored = Order.from_doc(await order_doc(api, order.id))
        assert stored.state is OrderState.COMPLETED
        # The order still describes exactly the tickets that exist.
        assert {(t.id, t.ticket_number, t.confirmation_code) for t in stored.tickets} == {
            (str(t["_id"]), t["ticketNumber"], t["confirmationCode"]) for t in tickets
        }
    assert await api.db.userTickets.count_documents({}) == 12
    assert await sold(api, general["id"]) == 12
    # And a third and fourth run, concurrently, still change nothing.
    before = await snapshot(api)
    reports = await asyncio.gather(*(repair(rt, grace_ms=0, settle_seconds=SETTLE) for _ in range(2)))
    assert all((r.orders_finished, r.orders_undone, r.corrections) == (0, 0, []) for r in reports)
    assert await snapshot(api) == before
    active, admitted = await slot_counts(api, event["id"])
    assert active == admitted == 0


async def test_finishing_an_order_a_second_time_issues_nothing_new(api, organizer, buyer):
    """Two finishers of one order (a slow purchase and the repair, or two repairs) each insert
    the planned tickets; the second insert meets tickets that already exist and must take them
    as done, not as clashes of numbers or codes to draw again."""
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    session = await checkout(api, buyer, event["id"])
    order = await stuck_order(api.db, event_id=event["id"], user="buyer-1", session_id=session["id"],
                              items=[(general, 2)], state=OrderState.RESERVED, key="k")
    first, first_issued = await orders_service.finish_order(rt, order)
    assert first.state is OrderState.COMPLETED and first_issued is not None
    # The same RESERVED snapshot, read before the first finished.
    second, second_issued = await orders_service.finish_order(rt, order)
    assert second.id == order.id and second.state is OrderState.COMPLETED and second_issued is None
    tickets = await issued_for(api, order.id)
    assert sorted(str(t["_id"]) for t in tickets) == sorted(t.id for t in order.tickets)
    stored = Order.from_doc(await order_doc(api, order.id))
    assert {(t.ticket_number, t.confirmation_code) for t in stored.tickets} == {
        (t["ticketNumber"], t["confirmationCode"]) for t in tickets
    }
    assert await sold(api, general["id"]) == 2


async def test_two_finishes_of_one_order_in_one_group_free_its_slot_once(api, organizer, buyer):
    """Two repairs of one process finishing the same order at once share one ending group: the
    buyer's entry is completed once, and its one slot freed once (not once per finisher)."""
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    session = await checkout(api, buyer, event["id"])
    await checkout(api, make_token("buyer-2"), event["id"])  # holds the other slot throughout
    order = await stuck_order(api.db, event_id=event["id"], user="buyer-1", session_id=session["id"],
                              items=[(general, 2)], state=OrderState.RESERVED, key="k")
    assert await slot_counts(api, event["id"]) == (2, 2)
    results = await asyncio.gather(*(orders_service.finish_order(rt, order) for _ in range(2)))
    assert sorted(issued is None for _, issued in results) == [False, True]
    assert await slot_counts(api, event["id"]) == (1, 1)


@pytest.mark.parametrize("clashing", ["ticketNumber", "confirmationCode"])
async def test_a_planned_ticket_that_clashes_with_an_issued_one_is_drawn_again(api, organizer, clashing):
    """Numbers and codes are random; the unique indexes catch a collision and finishing draws again."""
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    earlier, buyer = make_token("earlier"), make_token("buyer-1")
    await checkout(api, earlier, event["id"])
    existing = (await buy(api, earlier, event["id"], [(general["id"], 1)], key="k"))["tickets"][0]
    session = await checkout(api, buyer, event["id"])
    order = await stuck_order(api.db, event_id=event["id"], user="buyer-1", session_id=session["id"],
                              items=[(general, 2)], state=OrderState.RESERVED, key="k")
    await api.db.orders.update_one({"_id": ObjectId(order.id)}, {"$set": {f"tickets.0.{clashing}": existing[clashing]}})

    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert report.orders_finished == 1
    tickets = await issued_for(api, order.id)
    assert sorted(str(t["_id"]) for t in tickets) == sorted(t.id for t in order.tickets)
    assert existing[clashing] not in {t[clashing] for t in tickets}
    stored = Order.from_doc(await order_doc(api, order.id))
    assert stored.state is OrderState.COMPLETED
    assert {(t.ticket_number, t.confirmation_code) for t in stored.tickets} == {
        (t["ticketNumber"], t["confirmationCode"]) for t in tickets
    }
    all_tickets = [d async for d in api.db.userTickets.find({})]
    assert len({d["ticketNumber"] for d in all_tickets}) == len({d["confirmationCode"] for d in all_tickets}) == 3
    assert await sold(api, general["id"]) == 3


async def test_a_real_purchase_that_crashed_after_issuing_its_tickets_is_finished(api, organizer, buyer, monkeypatch):
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    moving = order_repo.move

    async def crash(db, order, to_state, *args, **kwargs):
        if to_state is OrderState.COMPLETED:
            raise RuntimeError("process killed with the tickets in")
        return await moving(db, order, to_state, *args, **kwargs)

    await checkout(api, buyer, event["id"])
    monkeypatch.setattr(order_repo, "move", crash)
    body = await api.op("PurchaseTickets", buy_input(event["id"], [(general["id"], 3)], "k"), buyer)
    assert body["errors"] and body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    monkeypatch.undo()
    (stuck,) = [Order.from_doc(d) async for d in api.db.orders.find({})]
    assert stuck.state is OrderState.PENDING and len(stuck.tickets) == 3
    assert await sold(api, general["id"]) == 3 and len(await issued_for(api, stuck.id)) == 3

    # A repair with the normal grace leaves a fresh order alone (its process may still be working on it).
    fresh = await repair(rt, settle_seconds=SETTLE)
    assert (fresh.orders_finished, fresh.orders_undone, fresh.corrections) == (0, 0, [])
    assert (await order_doc(api, stuck.id))["state"] == "PENDING"

    report = await repair_orders(rt, grace_ms=0)
    assert report.orders_finished == 1
    assert sorted(str(t["_id"]) for t in await issued_for(api, stuck.id)) == sorted(t.id for t in stuck.tickets)
    assert await sold(api, general["id"]) == 3
    replay = await buy(api, buyer, event["id"], [(general["id"], 3)], key="k")
    assert replay["id"] == stuck.id and len(replay["tickets"]) == 3
    assert await entry_status(api, event["id"], buyer) == "COMPLETED"


# --- (b) an order stuck PENDING is undone, the stock recounted ------------------------------------------------


@pytest.mark.parametrize("took_stock", [True, False])
async def test_a_pending_order_is_undone_and_stock_recounted(api, organizer, took_stock):
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    earlier, buyer = make_token("earlier"), make_token("buyer-1")
    await checkout(api, earlier, event["id"])
    await buy(api, earlier, event["id"], [(general["id"], 3)], key="fine")
    session = await checkout(api, buyer, event["id"])
    order = await stuck_order(api.db, event_id=event["id"], user="buyer-1", session_id=session["id"],
                              items=[(general, 2)], state=OrderState.PENDING, key="crashed", take_stock=took_stock)
    assert await sold(api, general["id"]) == (5 if took_stock else 3)

    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert (report.orders_finished, report.orders_undone) == (0, 1)
    stored = await order_doc(api, order.id)
    assert stored["state"] == "FAILED" and stored["failure"]["code"] == "PURCHASE_INTERRUPTED"
    assert await issued_for(api, order.id) == []
    assert await sold(api, general["id"]) == 3 == await api.db.userTickets.count_documents({})
    expected = [f"quantitySold of {general['id']}: 5 -> 3"] if took_stock else []
    assert report.corrections == expected
    read = (await api.data("Event", {"id": event["id"]}))["event"]
    assert read["ticketsRemaining"] == 97

    # The buyer's retry with the same key learns what happened; another body under it is still refused.
    replay = await api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 2)], "crashed"), buyer)
    assert codes(replay) == ["PURCHASE_INTERRUPTED"] and replay["order"] is None
    reused = await api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 1)], "crashed"), buyer)
    assert codes(reused) == ["IDEMPOTENCY_KEY_REUSED"]
    # Their session was untouched: a new key buys.
    assert await entry_status(api, event["id"], buyer) == "ADMITTED"
    order2 = await buy(api, buyer, event["id"], [(general["id"], 2)], key="crashed-2")
    assert len(order2["tickets"]) == 2
    assert await sold(api, general["id"]) == 5

    again = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert (again.orders_finished, again.orders_undone, again.corrections) == (0, 0, [])


async def test_a_real_purchase_that_crashed_with_its_stock_taken_before_issuing_is_undone(
    api, organizer, buyer, monkeypatch
):
    rt = api.runtime
    event, (general, vip) = await on_sale_event(api, organizer, ticket_type_input(), ticket_type_input(type="VIP"))

    async def crash_on_issuing(db, tickets):
        raise RuntimeError("process killed with the stock taken")

    await checkout(api, buyer, event["id"])
    monkeypatch.setattr(order_repo, "insert_tickets", crash_on_issuing)
    items = [(general["id"], 2), (vip["id"], 1)]
    body = await api.op("PurchaseTickets", buy_input(event["id"], items, "k"), buyer)
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    monkeypatch.undo()
    (stuck,) = [Order.from_doc(d) async for d in api.db.orders.find({})]
    assert stuck.state is OrderState.PENDING
    assert await sold(api, general["id"]) == 2 and await sold(api, vip["id"]) == 1

    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert report.orders_undone == 1
    assert sorted(report.corrections) == sorted([
        f"quantitySold of {general['id']}: 2 -> 0", f"quantitySold of {vip['id']}: 1 -> 0",
    ])
    assert await sold(api, general["id"]) == 0 and await sold(api, vip["id"]) == 0
    assert await api.db.userTickets.count_documents({}) == 0
    replay = await api.mutate("PurchaseTickets", buy_input(event["id"], items, "k"), buyer)
    assert codes(replay) == ["PURCHASE_INTERRUPTED"]


async def test_a_tentative_hold_left_by_a_dead_purchase_is_cleared_once_nothing_is_in_flight(api, organizer, buyer):
    """A purchase of two types that died between them left its first type tentative; its order
    is undone and the stock recounted, and the tentative count goes too (else buyers refused on
    that type would keep looking again for a second, at every sell-out)."""
    rt = api.runtime
    event, (general, vip) = await on_sale_event(api, organizer, ticket_type_input(), ticket_type_input(type="VIP"))
    await api.db.eventTickets.update_one(
        {"_id": ObjectId(general["id"])}, {"$set": {"quantitySold": 2, "quantityTentative": 2}}
    )
    # The purchase was part of a sale whose queue moved a minute ago (the repair visits active sales only).
    await api.db.events.update_one({"_id": ObjectId(event["id"])}, {"$set": {"queueActivityAtUtc": now_ms() - 60_000}})
    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert sorted(report.corrections) == sorted([
        f"quantitySold of {general['id']}: 2 -> 0", f"quantityTentative of {general['id']}: 2 -> 0",
    ])
    doc = await api.db.eventTickets.find_one({"_id": ObjectId(general["id"])})
    assert (doc["quantitySold"], doc["quantityTentative"]) == (0, 0)
    assert (await repair(rt, grace_ms=0, settle_seconds=SETTLE)).corrections == []


# --- (c) a leaked (or lost) checkout slot ---------------------------------------------------------------------


async def test_a_leaked_slot_is_recovered_and_admits_the_next_buyer(make_api, organizer):
    api = await make_api(checkout_limit=2)
    rt = api.runtime
    event, _ = await on_sale_event(api, organizer)
    first, second, third = make_token("first"), make_token("second"), make_token("third")
    await checkout(api, first, event["id"])
    # A process died between taking a slot and admitting anyone: the counter says 2, one buyer holds a slot.
    await api.db.events.update_one({"_id": ObjectId(event["id"])}, {"$inc": {"activeCheckouts": 1}})
    assert (await api.ok("JoinQueue", {"eventId": event["id"]}, second))["entry"]["status"] == "WAITING"
    assert (await api.ok("JoinQueue", {"eventId": event["id"]}, third))["entry"]["status"] == "WAITING"
    assert await slot_counts(api, event["id"]) == (2, 1)

    corrections = await repair_counters(rt, event_id=event["id"], settle_seconds=SETTLE)
    assert corrections == [f"activeCheckouts of {event['id']}: 2 -> 1"]
    assert await entry_status(api, event["id"], second) == "ADMITTED"  # the freed slot, in seq order
    assert await entry_status(api, event["id"], third) == "WAITING"
    assert await slot_counts(api, event["id"]) == (2, 2)
    assert (await api.ok("StartCheckout", {"eventId": event["id"]}, second))["session"]["status"] == "ACTIVE"

    assert await repair_counters(rt, event_id=event["id"], settle_seconds=SETTLE) == []
    assert await slot_counts(api, event["id"]) == (2, 2)


async def test_a_lost_slot_count_is_restored_so_the_limit_holds(make_api, organizer):
    api = await make_api(checkout_limit=1)
    rt = api.runtime
    event, _ = await on_sale_event(api, organizer)
    holder, newcomer = make_token("holder"), make_token("newcomer")
    await checkout(api, holder, event["id"])
    await api.db.events.update_one({"_id": ObjectId(event["id"])}, {"$set": {"activeCheckouts": 0}})

    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert report.corrections == [f"activeCheckouts of {event['id']}: 0 -> 1"]
    assert await slot_counts(api, event["id"]) == (1, 1)
    # With the count right again, the limit of one holds.
    assert (await api.ok("JoinQueue", {"eventId": event["id"]}, newcomer))["entry"]["status"] == "WAITING"
    assert await slot_counts(api, event["id"]) == (1, 1)


async def test_a_counter_that_moves_during_the_recount_is_left_for_the_next_run(make_api, organizer):
    """The recount waits `settle_seconds` and reads again: if anything moved meanwhile it corrects nothing.

    Admissions wait for the repair (it holds the admission lease); a slot given
    back by a leaving buyer does not, and is what moves here."""
    api = await make_api(checkout_limit=3)
    rt = api.runtime
    event, _ = await on_sale_event(api, organizer)
    first = make_token("first")
    await checkout(api, first, event["id"])
    await checkout(api, make_token("second"), event["id"])
    await api.db.events.update_one({"_id": ObjectId(event["id"])}, {"$inc": {"activeCheckouts": 1}})  # leaked

    async def leave_during_settle():
        await asyncio.sleep(0.15)
        return await api.ok("LeaveQueue", {"eventId": event["id"]}, first)

    corrections, left = await asyncio.gather(
        repair_counters(rt, event_id=event["id"], settle_seconds=0.6), leave_during_settle()
    )
    assert left["entry"]["status"] == "LEFT"
    assert corrections == []
    assert await slot_counts(api, event["id"]) == (2, 1)
    # The next run, undisturbed, corrects the leak.
    assert await repair_counters(rt, event_id=event["id"], settle_seconds=SETTLE) == [
        f"activeCheckouts of {event['id']}: 2 -> 1"
    ]
    assert await slot_counts(api, event["id"]) == (1, 1)


# --- (d) quantitySold too high or too low ---------------------------------------------------------------------


@pytest.mark.parametrize("wrong", [0, 2, 9, 40])
async def test_quantity_sold_is_recounted_from_issued_tickets(api, organizer, wrong):
    rt = api.runtime
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=40), ticket_type_input(type="VIP", quantityTotal=10)
    )
    for i in range(2):
        token = make_token(f"buyer-{i}")
        await checkout(api, token, event["id"])
        await buy(api, token, event["id"], [(general["id"], 2), (vip["id"], 1)], key="k")
    assert await sold(api, general["id"]) == 4
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$set": {"quantitySold": wrong}})

    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert report.corrections == [f"quantitySold of {general['id']}: {wrong} -> 4"]
    assert await sold(api, general["id"]) == 4 and await sold(api, vip["id"]) == 2
    read = (await api.data("Event", {"id": event["id"]}))["event"]
    assert read["ticketsRemaining"] == 36 + 8
    assert (await repair(rt, grace_ms=0, settle_seconds=SETTLE)).corrections == []


async def test_used_tickets_still_count_and_cancelled_ones_do_not(api, organizer, buyer):
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    await checkout(api, buyer, event["id"])
    order = await buy(api, buyer, event["id"], [(general["id"], 3)], key="k")
    gate = await gate_staff(api, organizer, event["id"], "g")
    await api.ok("CheckInTicket", {"confirmationCode": order["tickets"][0]["confirmationCode"]}, gate)
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$set": {"quantitySold": 1}})
    await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert await sold(api, general["id"]) == 3

    await api.ok("CancelEvent", {"eventId": event["id"]}, organizer)
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$set": {"quantitySold": 3}})
    await api.db.events.update_one({"_id": ObjectId(event["id"])}, {"$set": {"activeCheckouts": 2}})
    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert sorted(report.corrections) == sorted([
        f"quantitySold of {general['id']}: 3 -> 1",  # the USED ticket stays; the two VALID ones were cancelled
        f"activeCheckouts of {event['id']}: 2 -> 0",
    ])
    statuses = sorted([d["status"] async for d in api.db.userTickets.find({})])
    assert statuses == ["CANCELLED", "CANCELLED", "USED"]


# --- (e) a healthy sale is left exactly as it is ------------------------------------------------------------------


async def test_repair_changes_nothing_in_a_healthy_sale(make_api, organizer):
    api = await make_api(checkout_limit=2)
    rt = api.runtime
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(), ticket_type_input(type="VIP", quantityTotal=1)
    )
    people = [make_token(f"p{i}") for i in range(5)]
    await checkout(api, people[0], event["id"])
    await buy(api, people[0], event["id"], [(general["id"], 2), (vip["id"], 1)], key="k")
    await checkout(api, people[1], event["id"])  # holds a session
    # A purchase that failed cleanly (stored FAILED) is a finished order, not one to repair.
    payload = await api.mutate("PurchaseTickets", buy_input(event["id"], [(vip["id"], 1)], "late"), people[1])
    assert codes(payload) == ["SOLD_OUT"]
    await api.ok("JoinQueue", {"eventId": event["id"]}, people[2])  # admitted, no session yet
    await api.ok("JoinQueue", {"eventId": event["id"]}, people[3])  # waiting
    await api.ok("JoinQueue", {"eventId": event["id"]}, people[4])
    await api.ok("LeaveQueue", {"eventId": event["id"]}, people[4])  # left
    assert [await entry_status(api, event["id"], t) for t in people] == [
        "COMPLETED", "ADMITTED", "ADMITTED", "WAITING", "LEFT"
    ]
    # A second event with a sale, cancelled, is healthy too.
    other, (other_type,) = await on_sale_event(api, organizer)
    await checkout(api, people[0], other["id"])
    await buy(api, people[0], other["id"], [(other_type["id"], 1)], key="other")
    await api.ok("CancelEvent", {"eventId": other["id"]}, organizer)

    before = await snapshot(api)
    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert (report.orders_finished, report.orders_undone, report.corrections) == (0, 0, [])
    assert await snapshot(api) == before
    both = await asyncio.gather(*(repair(rt, grace_ms=0, settle_seconds=SETTLE) for _ in range(2)))
    assert all((r.orders_finished, r.orders_undone, r.corrections) == (0, 0, []) for r in both)
    assert await snapshot(api) == before


async def test_a_cancelled_sale_with_a_scanned_ticket_needs_no_repair(api, organizer, buyer):
    """After a cancellation settles, quantitySold must equal the type's non-cancelled tickets
    (invariant 1), so that the repair finds nothing to correct. A ticket scanned before the
    cancellation stays USED (check-in keeps it), so it still counts."""
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    await checkout(api, buyer, event["id"])
    order = await buy(api, buyer, event["id"], [(general["id"], 3)], key="k")
    gate = await gate_staff(api, organizer, event["id"], "g")
    await api.ok("CheckInTicket", {"confirmationCode": order["tickets"][0]["confirmationCode"]}, gate)
    await api.ok("CancelEvent", {"eventId": event["id"]}, organizer)
    not_cancelled = await api.db.userTickets.count_documents({"status": {"$ne": "CANCELLED"}})
    assert await sold(api, general["id"]) == not_cancelled
    report = await repair(rt, grace_ms=0, settle_seconds=SETTLE)
    assert report.corrections == []


async def test_an_in_flight_order_is_counted_as_sold_not_corrected_away(api, organizer, buyer):
    """A purchase still running (fresh PENDING order, stock taken) is no crash: the recount counts its items."""
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    session = await checkout(api, buyer, event["id"])
    order = await stuck_order(api.db, event_id=event["id"], user="buyer-1", session_id=session["id"],
                              items=[(general, 2)], state=OrderState.PENDING, key="running", age_ms=0)
    report = await repair(rt, settle_seconds=SETTLE)  # the default grace: the order is not stale
    assert (report.orders_finished, report.orders_undone, report.corrections) == (0, 0, [])
    assert (await order_doc(api, order.id))["state"] == "PENDING"
    assert await sold(api, general["id"]) == 2


async def test_a_slow_purchase_undone_by_the_repair_takes_its_tickets_back(api, organizer, buyer, monkeypatch):
    """The repair judges a PENDING order abandoned just as its purchase, still alive, issues the
    tickets: whichever comes last takes them back, and the buyer is told PURCHASE_INTERRUPTED."""
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    issuing = order_repo.insert_tickets

    async def repair_strikes_first(db, tickets):
        assert (await repair_orders(rt, grace_ms=0)).orders_undone == 1
        return await issuing(db, tickets)

    await checkout(api, buyer, event["id"])
    monkeypatch.setattr(order_repo, "insert_tickets", repair_strikes_first)
    refused = await api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 2)], "k"), buyer)
    monkeypatch.undo()
    assert codes(refused) == ["PURCHASE_INTERRUPTED"] and refused["order"] is None
    (stored,) = [d async for d in api.db.orders.find({})]
    assert stored["state"] == "FAILED"
    assert await api.db.userTickets.count_documents({}) == 0
