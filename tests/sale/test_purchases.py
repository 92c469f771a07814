"""M5 purchaseTickets, check-in, cancelEvent and myTickets through the API.

Every refusal is reached with real HTTP requests built from graphql/sale/*
documents, next to the request that succeeds. Stock and issued tickets are
read from the database to prove that a refused purchase changed nothing.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from app.catalog import sale_view
from app.orders import stock
from tests.api_client import ApiClient
from tests.conftest import make_token
from tests.factories import (
    active_sessions,
    create_event,
    create_tickets,
    iso,
    on_sale_event,
    session_status,
    ticket_type_input,
)
from tests.factories import admit_beyond_stock, buy, buy_input, checkout, codes, gate_staff

STAFF = make_token("gate-1", "staff")
STAFF_2 = make_token("gate-2", "staff")


# --- helpers ---------------------------------------------------------------------------








async def refused_purchase(api: ApiClient, token: str | None, event_id: str, items: list[tuple[str, int]],
                           code: str, key: str = "key-1", field: str | None | type(...) = ...) -> dict:
    payload = await api.mutate("PurchaseTickets", buy_input(event_id, items, key), token)
    assert codes(payload) == [code], payload
    assert payload["order"] is None
    if field is not ...:
        assert payload["errors"][0]["field"] == field, payload
    return payload["errors"][0]




async def my_entry(api: ApiClient, event_id: str, token: str) -> dict | None:
    return (await api.data("QueuePosition", {"eventId": event_id}, token))["queuePosition"]


async def sold(api: ApiClient, ticket_type_id: str) -> int:
    return (await api.db.eventTickets.find_one({"_id": ObjectId(ticket_type_id)}))["quantitySold"]


async def issued(api: ApiClient, **query) -> int:
    return await api.db.userTickets.count_documents(query)


async def assert_slots(api: ApiClient, event_id: str, expected: int | None = None) -> None:
    event = await api.db.events.find_one({"_id": ObjectId(event_id)})
    admitted = await api.db.eventQueue.count_documents({"eventId": ObjectId(event_id), "status": "ADMITTED"})
    assert event["activeCheckouts"] == admitted
    if expected is not None:
        assert admitted == expected


def in_seconds(seconds: float) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


# --- NO_ACTIVE_CHECKOUT / CHECKOUT_EXPIRED ------------------------------------------------------------


async def test_a_purchase_needs_an_active_session(api, organizer, buyer):
    event, (general,) = await on_sale_event(api, organizer)
    items = [(general["id"], 1)]
    await refused_purchase(api, None, event["id"], items, "UNAUTHENTICATED")
    await refused_purchase(api, buyer, event["id"], items, "NO_ACTIVE_CHECKOUT")  # never joined
    await api.ok("JoinQueue", {"eventId": event["id"]}, buyer)
    await refused_purchase(api, buyer, event["id"], items, "NO_ACTIVE_CHECKOUT")  # admitted, no session yet
    assert await sold(api, general["id"]) == 0 and await issued(api) == 0
    assert await api.db.orders.count_documents({}) == 0

    # Good twin: with the session open, the very same request (same key) succeeds.
    await api.ok("StartCheckout", {"eventId": event["id"]}, buyer)
    order = await buy(api, buyer, event["id"], items)
    assert len(order["tickets"]) == 1 and order["userId"] == "buyer-1"
    assert await sold(api, general["id"]) == 1
    # The session is spent: a new purchase (new key) needs a new place in the queue.
    await refused_purchase(api, buyer, event["id"], items, "NO_ACTIVE_CHECKOUT", key="key-2")
    assert await issued(api) == 1
    # A COMPLETED buyer may join again at the back, and buy again.
    again = (await api.ok("JoinQueue", {"eventId": event["id"]}, buyer))["entry"]
    assert again["status"] == "ADMITTED" and again["seq"] > 1
    await api.ok("StartCheckout", {"eventId": event["id"]}, buyer)
    second = await buy(api, buyer, event["id"], items, key="key-2")
    assert second["id"] != order["id"]
    assert (await buy(api, buyer, event["id"], items))["id"] == order["id"]  # the first key still replays
    assert await issued(api) == 2 and await sold(api, general["id"]) == 2


async def test_another_buyers_session_does_not_count(api, organizer):
    event, (general,) = await on_sale_event(api, organizer)
    holder, stranger = make_token("holder"), make_token("stranger")
    await checkout(api, holder, event["id"])
    await refused_purchase(api, stranger, event["id"], [(general["id"], 1)], "NO_ACTIVE_CHECKOUT")
    assert len((await buy(api, holder, event["id"], [(general["id"], 1)]))["tickets"]) == 1


async def test_an_expired_session_cannot_buy(make_api, organizer):
    api = await make_api(checkout_expiry_seconds=1)
    event, (general,) = await on_sale_event(api, organizer)
    late, quick = make_token("late"), make_token("quick")
    session = await checkout(api, late, event["id"])
    await asyncio.sleep(1.3)
    await refused_purchase(api, late, event["id"], [(general["id"], 1)], "CHECKOUT_EXPIRED")
    assert await session_status(api, session["id"]) == "EXPIRED"
    assert (await my_entry(api, event["id"], late))["status"] == "EXPIRED"
    assert await sold(api, general["id"]) == 0 and await issued(api) == 0
    await assert_slots(api, event["id"], 0)
    # Good twin: a buyer who buys inside the session's life.
    await checkout(api, quick, event["id"])
    assert len((await buy(api, quick, event["id"], [(general["id"], 2)]))["tickets"]) == 2


# --- sale windows -------------------------------------------------------------------------------------


async def test_a_type_whose_sale_has_not_opened(api, organizer, buyer):
    event, (general, vip) = await on_sale_event(api, organizer, ticket_type_input(), ticket_type_input(
        type="VIP", priceCents=30000, saleStartsAt=in_seconds(86400), saleEndsAt=in_seconds(2 * 86400)
    ))
    await checkout(api, buyer, event["id"])
    error = await refused_purchase(api, buyer, event["id"], [(vip["id"], 1)], "SALE_NOT_OPEN",
                                   field="input.items.0.ticketTypeId")
    assert "not opened" in error["message"]
    # In a mixed order the late type is named by its index, and nothing is bought.
    await refused_purchase(api, buyer, event["id"], [(general["id"], 1), (vip["id"], 1)], "SALE_NOT_OPEN",
                           key="key-2", field="input.items.1.ticketTypeId")
    assert await sold(api, general["id"]) == 0 and await sold(api, vip["id"]) == 0
    # Good twin: the type on sale, in the same (still ACTIVE) session.
    order = await buy(api, buyer, event["id"], [(general["id"], 1)], key="key-3")
    assert [t["ticketType"] for t in order["tickets"]] == ["GENERAL"]


async def test_a_type_whose_sale_has_ended(api, organizer, buyer):
    ends = datetime.now(UTC) + timedelta(seconds=2)
    event, (general, vip) = await on_sale_event(api, organizer, ticket_type_input(), ticket_type_input(
        type="VIP", priceCents=30000, saleEndsAt=iso(ends)
    ))
    assert vip["onSale"] is True
    await checkout(api, buyer, event["id"])
    await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.2)
    await refused_purchase(api, buyer, event["id"], [(vip["id"], 1)], "SALE_ENDED", field="input.items.0.ticketTypeId")
    assert await sold(api, vip["id"]) == 0
    types = {t["id"]: t for t in (await api.data("Event", {"id": event["id"]}))["event"]["ticketTypes"]}
    assert types[vip["id"]]["onSale"] is False and types[general["id"]]["onSale"] is True
    order = await buy(api, buyer, event["id"], [(general["id"], 1)], key="key-2")
    assert len(order["tickets"]) == 1


# --- stock: SOLD_OUT vs INSUFFICIENT_INVENTORY, all-or-nothing -------------------------------------------


async def test_sold_out_and_insufficient_inventory(api, organizer):
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=5), ticket_type_input(type="VIP", priceCents=30000)
    )
    a, b, c = make_token("a"), make_token("b"), make_token("c")
    for t in (a, b, c):
        await checkout(api, t, event["id"])
    await buy(api, a, event["id"], [(general["id"], 3)])
    assert await sold(api, general["id"]) == 3

    error = await refused_purchase(api, b, event["id"], [(general["id"], 3)], "INSUFFICIENT_INVENTORY",
                                   field="input.items.0.quantity")
    assert "2" in error["message"]
    assert await sold(api, general["id"]) == 3
    # The refusal kept b's session: b buys what is left.
    await buy(api, b, event["id"], [(general["id"], 2)], key="key-2")
    assert await sold(api, general["id"]) == 5

    # Now nothing is left: SOLD_OUT, pointing at the item (index 1 here), and the VIP item is not bought either.
    await refused_purchase(api, c, event["id"], [(vip["id"], 1), (general["id"], 1)], "SOLD_OUT",
                           field="input.items.1.quantity")
    assert await sold(api, vip["id"]) == 0
    assert await issued(api, userId="c") == 0
    # A replay of the failed order answers the same error (even though the VIP item alone could be bought).
    await refused_purchase(api, c, event["id"], [(vip["id"], 1), (general["id"], 1)], "SOLD_OUT",
                           field="input.items.1.quantity")
    assert await api.db.orders.count_documents({"userId": "c"}) == 1
    assert await sold(api, vip["id"]) == 0
    # Good twin for c: the VIP alone, with a new key.
    order = await buy(api, c, event["id"], [(vip["id"], 1)], key="key-3")
    assert [t["ticketType"] for t in order["tickets"]] == ["VIP"]
    assert await issued(api, eventTicketId=ObjectId(general["id"])) == 5


async def test_a_refusal_by_the_guarded_write_is_stored_and_replayed(api, organizer):
    """Another process sold the stock within the view's second: the guarded write refuses, the
    order is stored FAILED with its reason, the items taken are given back, and a replay answers it."""
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=5), ticket_type_input(type="VIP", priceCents=30000)
    )
    buyer = make_token("late")
    await checkout(api, buyer, event["id"])  # the view now holds 5 GENERAL left
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$set": {"quantitySold": 5}})
    items = [(vip["id"], 1), (general["id"], 1)]
    await refused_purchase(api, buyer, event["id"], items, "SOLD_OUT", field="input.items.1.quantity")
    (failed,) = [o async for o in api.db.orders.find({"userId": "late"})]
    assert failed["state"] == "FAILED" and failed["failure"]["code"] == "SOLD_OUT"
    assert await sold(api, vip["id"]) == 0  # taken first (in id order), then given back
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$set": {"quantitySold": 4}})
    await refused_purchase(api, buyer, event["id"], items, "SOLD_OUT", field="input.items.1.quantity")
    assert await api.db.orders.count_documents({"userId": "late"}) == 1
    assert await issued(api, userId="late") == 0


# --- stock held tentatively by an order of several types (app/orders/stock.py) ----------------------------


async def stock_of(api: ApiClient, ticket_type_id: str) -> tuple[int, int]:
    """(quantitySold, quantityTentative) as stored."""
    doc = await api.db.eventTickets.find_one({"_id": ObjectId(ticket_type_id)})
    return doc["quantitySold"], doc.get("quantityTentative", 0)


async def hold_tentatively(api: ApiClient, ticket_type_id: str, quantity: int) -> None:
    """What another process's order of several types does while it takes its other types."""
    await api.db.eventTickets.update_one(
        {"_id": ObjectId(ticket_type_id)}, {"$inc": {"quantitySold": quantity, "quantityTentative": quantity}}
    )


async def test_an_order_of_two_types_holds_the_first_tentatively_and_gives_it_back_when_the_second_is_refused(
        api, organizer, monkeypatch):
    monkeypatch.setattr(sale_view, "VIEW_MS", 60_000)  # the view stays as loaded: the guarded writes decide
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=10), ticket_type_input(type="VIP", quantityTotal=1)
    )
    assert general["id"] < vip["id"]  # GENERAL is taken first
    a, b = make_token("two-types-a"), make_token("two-types-b")
    for token in (a, b):
        await checkout(api, token, event["id"])  # the view now holds 1 VIP left
    await api.db.eventTickets.update_one({"_id": ObjectId(vip["id"])}, {"$set": {"quantitySold": 1}})  # sold elsewhere
    await refused_purchase(api, a, event["id"], [(general["id"], 1), (vip["id"], 1)], "SOLD_OUT",
                           field="input.items.1.quantity")
    assert await stock_of(api, general["id"]) == (0, 0)  # taken tentatively, then given back
    await api.db.eventTickets.update_one({"_id": ObjectId(vip["id"])}, {"$set": {"quantitySold": 0}})
    order = await buy(api, b, event["id"], [(general["id"], 2), (vip["id"], 1)])
    assert len(order["tickets"]) == 3
    # Sold for good: nothing stays tentative.
    assert await stock_of(api, general["id"]) == (2, 0) and await stock_of(api, vip["id"]) == (1, 0)


async def test_a_buyer_refused_on_a_tentative_hold_looks_again_and_gets_the_stock_that_comes_back(
        api, organizer, monkeypatch):
    """The rush's unsold tickets: an order of two types held the last GENERAL for a moment, and a
    buyer of GENERAL alone was refused although it came back. Now that buyer waits it out."""
    monkeypatch.setattr(sale_view, "VIEW_MS", 60_000)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=1))
    buyer = make_token("waits-out-a-hold")
    await checkout(api, buyer, event["id"])
    await hold_tentatively(api, general["id"], 1)
    purchase = asyncio.ensure_future(api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 1)]), buyer))
    await asyncio.sleep(0.15)
    assert not purchase.done()  # looking again, not refused
    await api.db.eventTickets.update_one(  # the holder's other type was refused: it gives this one back
        {"_id": ObjectId(general["id"])}, {"$inc": {"quantitySold": -1, "quantityTentative": -1}}
    )
    payload = await purchase
    assert payload["errors"] == [] and len(payload["order"]["tickets"]) == 1
    assert await stock_of(api, general["id"]) == (1, 0)


async def test_a_tentative_hold_that_is_confirmed_or_never_ends_refuses_within_the_wait(api, organizer, monkeypatch):
    monkeypatch.setattr(sale_view, "VIEW_MS", 60_000)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=1))
    await admit_beyond_stock(api, event["id"])
    confirmed, stale = make_token("hold-confirmed"), make_token("hold-stale")
    for token in (confirmed, stale):
        await checkout(api, token, event["id"])
    await hold_tentatively(api, general["id"], 1)
    purchase = asyncio.ensure_future(api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 1)]), confirmed))
    await asyncio.sleep(0.1)
    await api.db.eventTickets.update_one(  # the holder took its other type: this one is sold for good
        {"_id": ObjectId(general["id"])}, {"$inc": {"quantityTentative": -1}}
    )
    assert codes(await purchase) == ["SOLD_OUT"]
    # A hold whose process died stays until the repair: buyers are refused after the wait, not held for ever.
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$set": {"quantityTentative": 1}})
    started = asyncio.get_running_loop().time()
    await refused_purchase(api, stale, event["id"], [(general["id"], 1)], "SOLD_OUT")
    assert asyncio.get_running_loop().time() - started < stock.TENTATIVE_WAIT_SECONDS + 1.0


async def test_an_order_is_all_or_nothing(api, organizer, buyer):
    # The GENERAL type is created first (lower id), so it is reserved first and must be given back.
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=50), ticket_type_input(type="VIP", priceCents=30000, quantityTotal=2)
    )
    assert general["id"] < vip["id"]
    await checkout(api, buyer, event["id"])
    await refused_purchase(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 3)], "INSUFFICIENT_INVENTORY",
                           field="input.items.1.quantity")
    assert await sold(api, general["id"]) == 0 and await sold(api, vip["id"]) == 0
    await refused_purchase(api, buyer, event["id"], [(vip["id"], 3), (general["id"], 2)], "INSUFFICIENT_INVENTORY",
                           key="key-2", field="input.items.0.quantity")
    assert await sold(api, general["id"]) == 0 and await sold(api, vip["id"]) == 0
    assert await issued(api) == 0
    read = (await api.data("Event", {"id": event["id"]}))["event"]
    assert read["ticketsRemaining"] == 52
    # Good twin: both items fillable.
    order = await buy(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 2)], key="key-3")
    assert sorted(t["ticketType"] for t in order["tickets"]) == ["GENERAL", "GENERAL", "VIP", "VIP"]
    assert order["totalCents"] == 2 * 9900 + 2 * 30000
    assert await sold(api, general["id"]) == 2 and await sold(api, vip["id"]) == 2


async def test_buyers_racing_for_the_last_tickets_never_oversell(make_api, organizer):
    api = await make_api(checkout_limit=12)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=7, maxPerPurchase=2))
    await admit_beyond_stock(api, event["id"])
    people = [make_token(f"racer-{i}") for i in range(12)]
    for t in people:
        await checkout(api, t, event["id"])
    payloads = await asyncio.gather(*(
        api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 1 + i % 2)], f"k{i}"), t)
        for i, t in enumerate(people)
    ))
    bought = sum(len(p["order"]["tickets"]) for p in payloads if p["order"])
    refusals = {c for p in payloads for c in codes(p)}
    assert refusals <= {"SOLD_OUT", "INSUFFICIENT_INVENTORY"}, payloads
    assert 6 <= bought <= 7  # at most one ticket can be stranded by a 2-ticket order that did not fit
    assert await sold(api, general["id"]) == bought == await issued(api)
    winners = sum(1 for p in payloads if p["order"])
    await assert_slots(api, event["id"], 12 - winners)


# --- limits and validation ------------------------------------------------------------------------------


async def test_per_type_purchase_limit(api, organizer, buyer):
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(maxPerPurchase=4))
    await checkout(api, buyer, event["id"])
    error = await refused_purchase(api, buyer, event["id"], [(general["id"], 5)], "PURCHASE_LIMIT_EXCEEDED",
                                   field="input.items.0.quantity")
    assert "4" in error["message"]
    assert await sold(api, general["id"]) == 0
    assert len((await buy(api, buyer, event["id"], [(general["id"], 4)], key="key-2"))["tickets"]) == 4


async def test_overall_purchase_limit_comes_from_settings(make_api, organizer):
    api = await make_api(max_tickets_per_purchase=3)
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(maxPerPurchase=3), ticket_type_input(type="VIP", maxPerPurchase=3)
    )
    buyer = make_token("buyer-1")
    await checkout(api, buyer, event["id"])
    error = await refused_purchase(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 2)],
                                   "PURCHASE_LIMIT_EXCEEDED", field="input.items")
    assert "3" in error["message"]
    assert await sold(api, general["id"]) == 0 and await sold(api, vip["id"]) == 0
    order = await buy(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 1)], key="key-2")
    assert len(order["tickets"]) == 3


@pytest.mark.parametrize(("items", "key", "fields"), [
    ([("T0", 0)], "k", ["input.items.0.quantity"]),
    ([("T0", -1)], "k", ["input.items.0.quantity"]),
    ([], "k", ["input.items"]),
    ([("T0", 1)], "", ["input.idempotencyKey"]),
    ([("T0", 1)], "   ", ["input.idempotencyKey"]),
    ([("T0", 1)], "x" * 201, ["input.idempotencyKey"]),
    ([("T0", 1), ("T0", 2)], "k", ["input.items.1.ticketTypeId"]),
    ([("T0", 0), ("T1", 1)], "", ["input.idempotencyKey", "input.items.0.quantity"]),
])
async def test_malformed_purchases_are_validation_errors(api, organizer, buyer, items, key, fields):
    event, (general, vip) = await on_sale_event(api, organizer, ticket_type_input(), ticket_type_input(type="VIP"))
    ids = {"T0": general["id"], "T1": vip["id"]}
    await checkout(api, buyer, event["id"])
    concrete = [(ids[t], q) for t, q in items]
    payload = await api.mutate("PurchaseTickets", buy_input(event["id"], concrete, key), buyer)
    assert set(codes(payload)) == {"VALIDATION"} and payload["order"] is None
    assert sorted(e["field"] for e in payload["errors"]) == sorted(fields)
    assert await api.db.orders.count_documents({}) == 0 and await issued(api) == 0
    assert await sold(api, general["id"]) == 0
    # Good twin: the same session, a well-formed request.
    assert len((await buy(api, buyer, event["id"], [(general["id"], 1)], key="good"))["tickets"]) == 1


async def test_one_order_is_paid_in_one_currency(api, organizer, buyer):
    event, (gbp, usd) = await on_sale_event(
        api, organizer, ticket_type_input(currency="GBP"), ticket_type_input(type="VIP", currency="USD")
    )
    await checkout(api, buyer, event["id"])
    await refused_purchase(api, buyer, event["id"], [(gbp["id"], 1), (usd["id"], 1)], "VALIDATION", field="input.items")
    assert await sold(api, gbp["id"]) == 0 and await sold(api, usd["id"]) == 0
    order = await buy(api, buyer, event["id"], [(usd["id"], 1)], key="key-2")
    assert order["currency"] == "USD"


async def test_ticket_types_of_other_events_and_malformed_ids_are_not_found(api, organizer, buyer):
    event, (general,) = await on_sale_event(api, organizer)
    other = await create_event(api, organizer, title="Another night")
    (foreign,) = await create_tickets(api, organizer, other["id"], ticket_type_input())
    await checkout(api, buyer, event["id"])
    await refused_purchase(api, buyer, event["id"], [(foreign["id"], 1)], "NOT_FOUND",
                           field="input.items.0.ticketTypeId")
    await refused_purchase(api, buyer, event["id"], [(general["id"], 1), ("not-an-id", 1)], "NOT_FOUND",
                           key="key-2", field="input.items.1.ticketTypeId")
    await refused_purchase(api, buyer, event["id"], [(str(ObjectId()), 1)], "NOT_FOUND",
                           key="key-3", field="input.items.0.ticketTypeId")
    await refused_purchase(api, buyer, str(ObjectId()), [(general["id"], 1)], "NOT_FOUND",
                           key="key-4", field="input.eventId")
    assert await sold(api, foreign["id"]) == 0 and await sold(api, general["id"]) == 0 and await issued(api) == 0
    assert len((await buy(api, buyer, event["id"], [(general["id"], 1)], key="key-5"))["tickets"]) == 1


async def test_a_cancelled_event_sells_nothing(api, organizer, buyer):
    event, (general,) = await on_sale_event(api, organizer)
    session = await checkout(api, buyer, event["id"])
    await api.ok("CancelEvent", {"eventId": event["id"]}, organizer)
    await refused_purchase(api, buyer, event["id"], [(general["id"], 1)], "EVENT_CANCELLED")
    assert await sold(api, general["id"]) == 0 and await issued(api) == 0
    assert await session_status(api, session["id"]) == "EXPIRED"


# --- idempotency ---------------------------------------------------------------------------------------


async def test_a_retry_returns_the_same_order_and_issues_nothing(make_api, organizer):
    api = await make_api(checkout_limit=1)
    event, (general, vip) = await on_sale_event(api, organizer, ticket_type_input(), ticket_type_input(type="VIP"))
    buyer, next_buyer = make_token("buyer-1"), make_token("buyer-2")
    session = await checkout(api, buyer, event["id"])
    waiting = (await api.ok("JoinQueue", {"eventId": event["id"]}, next_buyer))["entry"]
    assert waiting["status"] == "WAITING"

    items = [(general["id"], 2), (vip["id"], 1)]
    order = await buy(api, buyer, event["id"], items, key="once")
    assert await issued(api) == 3
    # After the purchase: the session and the entry are COMPLETED and the next buyer is admitted.
    assert await session_status(api, session["id"]) == "COMPLETED"
    assert (await my_entry(api, event["id"], buyer))["status"] == "COMPLETED"
    assert (await my_entry(api, event["id"], next_buyer))["status"] == "ADMITTED"
    await assert_slots(api, event["id"], 1)

    # The replay is answered before the (now completed) session is checked, item order regardless.
    for replay_items in (items, list(reversed(items))):
        replay = await buy(api, buyer, event["id"], replay_items, key="once")
        assert replay["id"] == order["id"]
        assert sorted(t["id"] for t in replay["tickets"]) == sorted(t["id"] for t in order["tickets"])
        assert replay["totalCents"] == order["totalCents"]
    assert await issued(api) == 3
    assert await sold(api, general["id"]) == 2 and await sold(api, vip["id"]) == 1
    assert await api.db.orders.count_documents({}) == 1

    # The same key for another purchase is refused and buys nothing.
    for other in ([(general["id"], 3)], [(general["id"], 2)], [(vip["id"], 1)]):
        await refused_purchase(api, buyer, event["id"], other, "IDEMPOTENCY_KEY_REUSED", key="once",
                               field="input.idempotencyKey")
    assert await issued(api) == 3
    # Keys belong to a buyer: another buyer may use the same key for their own order.
    await api.ok("StartCheckout", {"eventId": event["id"]}, next_buyer)
    theirs = await buy(api, next_buyer, event["id"], [(general["id"], 1)], key="once")
    assert theirs["id"] != order["id"] and theirs["userId"] == "buyer-2"
    await assert_slots(api, event["id"], 0)


async def test_concurrent_retries_issue_one_order(api, organizer, buyer):
    event, (general,) = await on_sale_event(api, organizer)
    await checkout(api, buyer, event["id"])
    payloads = await asyncio.gather(*(
        api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 2)], "same"), buyer) for _ in range(5)
    ))
    assert all(p["errors"] == [] for p in payloads), payloads
    assert len({p["order"]["id"] for p in payloads}) == 1
    assert await issued(api) == 2 and await sold(api, general["id"]) == 2


# --- tickets: numbers and codes -----------------------------------------------------------------------------


ALPHABETS = [  # (name, characters): the smallest one holding every character gives the bits per character
    ("hex", set("0123456789abcdef")),
    ("HEX", set("0123456789ABCDEF")),
    ("base32", set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
    ("crockford", set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")),
    ("base36", set("0123456789abcdefghijklmnopqrstuvwxyz")),
    ("base62", set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")),
    ("base64url", set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")),
]


async def test_ticket_numbers_and_confirmation_codes_are_unique_and_unguessable(api, organizer):
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(maxPerPurchase=10))
    tickets = []
    for i in range(4):
        token = make_token(f"fan-{i}")
        await checkout(api, token, event["id"])
        tickets += (await buy(api, token, event["id"], [(general["id"], 10)]))["tickets"]
    assert len(tickets) == 40
    assert len({t["ticketNumber"] for t in tickets}) == 40
    assert len({t["confirmationCode"] for t in tickets}) == 40
    assert len({t["id"] for t in tickets}) == 40
    stored = [d async for d in api.db.userTickets.find({})]
    assert len({d["confirmationCode"] for d in stored}) == len(stored) == 40
    for ticket in tickets:
        code = ticket["confirmationCode"]
        chars = set(code)
        size = next((len(a) for _, a in ALPHABETS if chars <= a), None)
        assert size is not None, f"unexpected characters in {code!r}"
        assert len(code) * math.log2(size) >= 64, f"{code!r} carries under 64 bits"
        assert code not in ticket["ticketNumber"]
        assert re.fullmatch(r"[A-Za-z0-9-]+", ticket["ticketNumber"]), ticket["ticketNumber"]
        assert ticket["status"] == "VALID" and ticket["usedAt"] is None
    # Codes are not sequential or derived from one another.
    prefixes = {t["confirmationCode"][:6] for t in tickets}
    assert len(prefixes) > 35


# --- check-in ---------------------------------------------------------------------------------------------


async def test_check_in_is_for_staff_once_per_ticket(api, organizer, other_organizer, buyer):
    event, (general,) = await on_sale_event(api, organizer)
    await checkout(api, buyer, event["id"])
    order = await buy(api, buyer, event["id"], [(general["id"], 2)])
    code = order["tickets"][0]["confirmationCode"]

    # Staff of no gate of this event, and another event's organizer, see the code as unknown.
    for token, expected in ((None, "UNAUTHENTICATED"), (buyer, "FORBIDDEN"), (other_organizer, "NOT_FOUND"),
                            (STAFF, "NOT_FOUND")):
        payload = await api.mutate("CheckInTicket", {"confirmationCode": code}, token)
        assert codes(payload) == [expected] and payload["ticket"] is None
    assert (await api.db.userTickets.find_one({"confirmationCode": code}))["status"] == "VALID"
    await gate_staff(api, organizer, event["id"], "gate-1")
    await gate_staff(api, organizer, event["id"], "gate-2")

    payload = await api.mutate("CheckInTicket", {"confirmationCode": "no-such-code"}, STAFF)
    assert codes(payload) == ["NOT_FOUND"] and payload["errors"][0]["field"] == "confirmationCode"
    payload = await api.mutate("CheckInTicket", {"confirmationCode": "   "}, STAFF)
    assert codes(payload) == ["VALIDATION"] and payload["errors"][0]["field"] == "confirmationCode"

    scanned = (await api.ok("CheckInTicket", {"confirmationCode": code}, STAFF))["ticket"]
    assert scanned["status"] == "USED" and scanned["usedAt"] is not None
    assert scanned["id"] == order["tickets"][0]["id"] and scanned["eventId"] == event["id"]
    second = await api.mutate("CheckInTicket", {"confirmationCode": code}, STAFF_2)
    assert codes(second) == ["TICKET_ALREADY_USED"] and second["ticket"] is None

    mine = {t["id"]: t for t in (await api.data("MyTickets", {"eventId": event["id"]}, buyer))["myTickets"]}
    assert mine[scanned["id"]]["status"] == "USED" and mine[scanned["id"]]["usedAt"] == scanned["usedAt"]
    assert mine[order["tickets"][1]["id"]]["status"] == "VALID"
    # An admin holds every role.
    admin = make_token("root", "admin")
    other = (await api.ok("CheckInTicket", {"confirmationCode": order["tickets"][1]["confirmationCode"]}, admin))["ticket"]
    assert other["status"] == "USED"


async def test_two_gates_scanning_one_code_at_once_let_it_in_once(api, organizer, buyer):
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(maxPerPurchase=10))
    await checkout(api, buyer, event["id"])
    order = await buy(api, buyer, event["id"], [(general["id"], 10)])
    await gate_staff(api, organizer, event["id"], "gate-1")
    await gate_staff(api, organizer, event["id"], "gate-2")
    for ticket in order["tickets"]:
        first, second = await asyncio.gather(
            api.mutate("CheckInTicket", {"confirmationCode": ticket["confirmationCode"]}, STAFF),
            api.mutate("CheckInTicket", {"confirmationCode": ticket["confirmationCode"]}, STAFF_2),
        )
        outcomes = sorted([tuple(codes(first)), tuple(codes(second))])
        assert outcomes == [(), ("TICKET_ALREADY_USED",)], (first, second)
        winner = first if first["errors"] == [] else second
        assert winner["ticket"]["status"] == "USED"
    assert await api.db.userTickets.count_documents({"status": "USED"}) == 10


# --- cancelEvent -------------------------------------------------------------------------------------------


async def test_cancel_event_ends_everything(make_api, organizer, other_organizer):
    api = await make_api(checkout_limit=1)
    event, (general,) = await on_sale_event(api, organizer)
    owner_of_tickets, in_checkout, waiting = make_token("holder"), make_token("in-checkout"), make_token("waiting")
    await checkout(api, owner_of_tickets, event["id"])
    order = await buy(api, owner_of_tickets, event["id"], [(general["id"], 2)])
    await gate_staff(api, organizer, event["id"], "gate-1")
    session = await checkout(api, in_checkout, event["id"])
    assert (await api.ok("JoinQueue", {"eventId": event["id"]}, waiting))["entry"]["status"] == "WAITING"

    for token, expected in ((other_organizer, "FORBIDDEN"), (owner_of_tickets, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        payload = await api.mutate("CancelEvent", {"eventId": event["id"]}, token)
        assert codes(payload) == [expected] and payload["event"] is None
    assert (await api.data("Event", {"id": event["id"]}))["event"]["status"] == "ON_SALE"
    payload = await api.mutate("CancelEvent", {"eventId": str(ObjectId())}, organizer)
    assert codes(payload) == ["NOT_FOUND"]

    cancelled = (await api.ok("CancelEvent", {"eventId": event["id"]}, organizer))["event"]
    assert cancelled == {"id": event["id"], "status": "CANCELLED"}
    read = (await api.data("Event", {"id": event["id"]}))["event"]
    assert read["status"] == "CANCELLED" and all(t["onSale"] is False for t in read["ticketTypes"])

    tickets = (await api.data("MyTickets", {"eventId": event["id"]}, owner_of_tickets))["myTickets"]
    assert [t["status"] for t in tickets] == ["CANCELLED", "CANCELLED"]
    scan = await api.mutate("CheckInTicket", {"confirmationCode": order["tickets"][0]["confirmationCode"]}, STAFF)
    assert codes(scan) == ["TICKET_CANCELLED"]
    # The queue closed: a buyer in checkout and one still waiting alike (their sessions ended).
    assert (await my_entry(api, event["id"], in_checkout))["status"] == "CLOSED"
    assert (await my_entry(api, event["id"], waiting))["status"] == "CLOSED"
    assert (await my_entry(api, event["id"], owner_of_tickets))["status"] == "COMPLETED"
    assert await session_status(api, session["id"]) == "EXPIRED"
    assert await active_sessions(api) == 0
    await assert_slots(api, event["id"], 0)
    assert await sold(api, general["id"]) == 0  # cancelled tickets no longer count as sold

    again = await api.mutate("CancelEvent", {"eventId": event["id"]}, organizer)
    assert codes(again) == ["EVENT_CANCELLED"] and again["event"] is None
    await refused_purchase(api, in_checkout, event["id"], [(general["id"], 1)], "EVENT_CANCELLED", key="late")


# --- myTickets ----------------------------------------------------------------------------------------------


async def test_my_tickets_newest_first_and_by_event(api, organizer, buyer):
    first_event, (first_type,) = await on_sale_event(api, organizer)
    second_event = await create_event(api, organizer, title="Second show")
    (second_type,) = await create_tickets(api, organizer, second_event["id"], ticket_type_input(type="VIP"))
    await checkout(api, buyer, first_event["id"])
    older = await buy(api, buyer, first_event["id"], [(first_type["id"], 2)], key="a")
    await asyncio.sleep(0.02)
    await checkout(api, buyer, second_event["id"])
    newer = await buy(api, buyer, second_event["id"], [(second_type["id"], 1)], key="b")
    # Someone else's tickets never show.
    other = make_token("someone-else")
    await checkout(api, other, second_event["id"])
    await buy(api, other, second_event["id"], [(second_type["id"], 1)], key="c")

    mine = (await api.data("MyTickets", {}, buyer))["myTickets"]
    assert [t["orderId"] for t in mine] == [newer["id"], older["id"], older["id"]]
    stamps = [t["purchasedAt"] for t in mine]
    assert stamps == sorted(stamps, reverse=True)
    assert mine[0]["event"]["id"] == second_event["id"] and mine[0]["ticketType"] == "VIP"

    only_first = (await api.data("MyTickets", {"eventId": first_event["id"]}, buyer))["myTickets"]
    assert {t["id"] for t in only_first} == {t["id"] for t in older["tickets"]}
    assert all(t["eventId"] == first_event["id"] for t in only_first)
    assert (await api.data("MyTickets", {"eventId": str(ObjectId())}, buyer))["myTickets"] == []
    assert (await api.data("MyTickets", {"eventId": "not-an-id"}, buyer))["myTickets"] == []

    body = await api.op("MyTickets", {}, None)
    assert body["data"] is None or body["data"].get("myTickets") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
