"""Checkout holds (issue 11 part 1): a checkout that names what it wants holds that stock for the
session, so nobody admitted loses to somebody admitted after them, and the purchase cannot
fail for stock. Admission never admits more buyers than there are tickets to hold.
"""

from __future__ import annotations

import asyncio
import time

from bson import ObjectId

from app.catalog import service as catalog
from app.flows.repair import repair_counters
from app.queue import service as queue
from tests.api_client import ApiClient
from tests.conftest import make_token
from tests.factories import buy, buy_input, codes, join, on_sale_event, ticket_type_input
from tests.sale.test_subscriptions import connector_of, subscribe

CROWD, TICKETS, LIMIT = 200, 60, 50


async def hold(api: ApiClient, token: str, event_id: str, items: list[tuple[str, int]]) -> dict:
    """startCheckout naming `items`: its payload."""
    return await api.mutate("StartCheckout", {"eventId": event_id,
                                              "items": [{"ticketTypeId": t, "quantity": q} for t, q in items]}, token)


async def stock_of(api: ApiClient, type_id: str) -> dict:
    return await api.db.eventTickets.find_one({"_id": ObjectId(type_id)})


async def entry_of(api: ApiClient, event_id: str, user: str) -> dict:
    return await api.db.eventQueue.find_one({"eventId": ObjectId(event_id), "userId": user})


async def wait_admitted(api: ApiClient, token: str, event_id: str, timeout: float = 60.0) -> dict:
    """Poll queuePosition until the entry is no longer WAITING; the entry."""
    deadline = time.monotonic() + timeout
    while True:
        entry = (await api.data("QueuePosition", {"eventId": event_id}, token))["queuePosition"]
        if entry["status"] != "WAITING" or time.monotonic() > deadline:
            return entry
        await asyncio.sleep(0.05)


async def test_a_crowd_holding_one_each_is_served_in_admission_order_and_nobody_admitted_loses(make_api, organizer):
    api = await make_api(checkout_limit=LIMIT)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=TICKETS, maxPerPurchase=4))
    go = asyncio.Event()

    async def buyer(i: int) -> dict:
        token = make_token(f"crowd-{i:03d}")
        await go.wait()
        entry = await join(api, token, event["id"])
        record = {"user": f"crowd-{i:03d}", "seq": entry["seq"], "admitted": entry["status"] == "ADMITTED"}
        if entry["status"] == "WAITING":
            entry = await wait_admitted(api, token, event["id"])
            record["admitted"] = entry["status"] == "ADMITTED"
        record["final"] = entry["status"]
        if not record["admitted"]:
            return record
        started = await hold(api, token, event["id"], [(general["id"], 1)])
        record["hold_errors"] = codes(started)
        if started["session"] is not None:
            assert started["session"]["heldItems"] == [{"ticketTypeId": general["id"], "quantity": 1}]
            payload = await api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 1)], f"k-{i}"), token)
            record["bought"] = payload["order"] is not None and len(payload["order"]["tickets"]) == 1
            record["buy_errors"] = codes(payload)
        return record

    tasks = [asyncio.create_task(buyer(i)) for i in range(CROWD)]
    await asyncio.sleep(0.2)
    go.set()
    records = await asyncio.gather(*tasks)

    admitted = [r for r in records if r["admitted"]]
    # Nobody was admitted without a ticket to hold, and every admitted buyer held and bought.
    assert len(admitted) == TICKETS, sorted(r["seq"] for r in admitted)
    assert all(r["hold_errors"] == [] and r["bought"] for r in admitted), [r for r in admitted if not r.get("bought")]
    # The first TICKETS places won: admission follows the queue, and nobody admitted lost.
    assert sorted(r["seq"] for r in admitted) == list(range(1, TICKETS + 1))
    assert all(r["final"] == "CLOSED" for r in records if not r["admitted"])
    stock = await stock_of(api, general["id"])
    assert (stock["quantitySold"], stock.get("quantityHeld", 0)) == (TICKETS, 0)
    assert await api.db.userTickets.count_documents({"eventId": ObjectId(event["id"])}) == TICKETS
    stored = await api.db.events.find_one({"_id": ObjectId(event["id"])})
    assert stored["status"] == "SOLD_OUT"


async def test_an_expired_hold_goes_back_and_the_next_buyer_is_admitted_within_two_seconds(make_api, organizer):
    api = await make_api(checkout_limit=5, checkout_expiry_seconds=2, sweep=True)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=2))
    first, second, third = (make_token(u) for u in ("h-1", "h-2", "h-3"))
    for token in (first, second):
        await join(api, token, event["id"], "ADMITTED")
    # Two tickets, both claimed by the two admitted: the third buyer waits though slots are free.
    waiting = await join(api, third, event["id"], "WAITING")
    assert waiting["position"] == 1
    for token in (first, second):
        assert codes(await hold(api, token, event["id"], [(general["id"], 1)])) == []
    # Both held: the sale stays on for the buyer waiting, and turns newcomers to the waitlist.
    catalog.forget_sale_view(event["id"])
    assert codes(await api.mutate("JoinQueue", {"eventId": event["id"]}, make_token("h-late"))) == ["SOLD_OUT"]
    stock = await stock_of(api, general["id"])
    assert (stock["quantitySold"], stock["quantityHeld"]) == (2, 2)
    shown = (await api.data("Event", {"id": event["id"]}))["event"]
    assert shown["status"] == "ON_SALE" and shown["ticketTypes"][0]["quantityHeld"] == 2
    assert shown["ticketTypes"][0]["quantityRemaining"] == 0
    await buy(api, second, event["id"], [(general["id"], 1)])

    expires_at = (await entry_of(api, event["id"], "h-1"))["expiresAtUtc"]
    entry = await wait_admitted(api, third, event["id"], timeout=10)
    assert entry["status"] == "ADMITTED"
    admitted_at = (await entry_of(api, event["id"], "h-3"))["admittedAtUtc"]
    assert admitted_at - expires_at < 2000, admitted_at - expires_at
    held = await entry_of(api, event["id"], "h-1")
    assert (held["status"], held["holdState"]) == ("EXPIRED", "RETURNED")
    stock = await stock_of(api, general["id"])
    assert (stock["quantitySold"], stock["quantityHeld"]) == (1, 0)
    assert codes(await hold(api, third, event["id"], [(general["id"], 1)])) == []
    await buy(api, third, event["id"], [(general["id"], 1)])
    assert (await api.db.events.find_one({"_id": ObjectId(event["id"])}))["status"] == "SOLD_OUT"
    assert await api.db.userTickets.count_documents({"eventId": ObjectId(event["id"])}) == 2


async def test_a_hold_is_what_the_purchase_buys_and_cannot_change(make_api, organizer):
    api = await make_api(checkout_limit=5)
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=10), ticket_type_input(type="VIP", priceCents=30000, quantityTotal=3))
    buyer = make_token("h-buyer")
    await join(api, buyer, event["id"], "ADMITTED")
    async with subscribe(connector_of(api), "EventInventory", {"eventId": event["id"]}) as inventory:
        session = (await hold(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 1)]))["session"]
        # The live inventory shows the held stock apart from the sold.
        seen = await inventory.until("eventInventory", lambda v: any(t["quantityHeld"] for t in v["ticketTypes"]))
        shown = {t["id"]: t for t in seen[-1][1]["ticketTypes"]}
        assert (shown[general["id"]]["quantityHeld"], shown[general["id"]]["quantityRemaining"]) == (2, 8)
    assert sorted((i["ticketTypeId"], i["quantity"]) for i in session["heldItems"]) == sorted(
        [(general["id"], 2), (vip["id"], 1)])
    # Asked again: the same session; with other items: refused, the hold unchanged.
    again = await hold(api, buyer, event["id"], [(vip["id"], 1), (general["id"], 2)])
    assert again["session"]["id"] == session["id"]
    changed = await hold(api, buyer, event["id"], [(general["id"], 1)])
    assert codes(changed) == ["VALIDATION"] and changed["errors"][0]["field"] == "items"
    refused = await api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 1)], "k-less"), buyer)
    assert codes(refused) == ["VALIDATION"]
    assert ((await stock_of(api, general["id"]))["quantityHeld"], (await stock_of(api, vip["id"]))["quantityHeld"]) == (2, 1)
    order = await buy(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 1)], "k-all")
    assert len(order["tickets"]) == 3
    general_stock, vip_stock = await stock_of(api, general["id"]), await stock_of(api, vip["id"])
    assert (general_stock["quantitySold"], general_stock["quantityHeld"]) == (2, 0)
    assert (vip_stock["quantitySold"], vip_stock["quantityHeld"]) == (1, 0)
    entry = await entry_of(api, event["id"], "h-buyer")
    assert (entry["status"], entry["holdState"], str(entry["holdOrderId"])) == ("COMPLETED", "BOUGHT", order["id"])


async def test_a_hold_is_checked_as_a_purchase_and_a_short_one_takes_nothing(make_api, organizer):
    api = await make_api(checkout_limit=5)
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(quantityTotal=10, maxPerPurchase=4),
        ticket_type_input(type="VIP", priceCents=30000, quantityTotal=2))
    buyer = make_token("h-short")
    await join(api, buyer, event["id"], "ADMITTED")
    too_many = await hold(api, buyer, event["id"], [(general["id"], 5)])
    assert codes(too_many) == ["PURCHASE_LIMIT_EXCEEDED"] and too_many["errors"][0]["field"] == "items.0.quantity"
    assert codes(await hold(api, buyer, event["id"], [])) == ["VALIDATION"]
    assert codes(await hold(api, buyer, event["id"], [(general["id"], 0)])) == ["VALIDATION"]
    assert codes(await hold(api, buyer, event["id"], [("not-an-id", 1)])) == ["NOT_FOUND"]
    short = await hold(api, buyer, event["id"], [(general["id"], 2), (vip["id"], 3)])
    assert codes(short) == ["INSUFFICIENT_INVENTORY"] and short["errors"][0]["field"] == "items.1.quantity"
    for type_id in (general["id"], vip["id"]):
        stock = await stock_of(api, type_id)
        assert (stock["quantitySold"], stock.get("quantityHeld", 0)) == (0, 0)
    entry = await entry_of(api, event["id"], "h-short")
    assert entry["status"] == "ADMITTED" and entry.get("sessionId") is None
    assert codes(await hold(api, buyer, event["id"], [(vip["id"], 2)])) == []


async def test_a_buyer_may_hold_more_than_one_only_out_of_stock_no_other_admitted_buyer_needs(make_api, organizer):
    api = await make_api(checkout_limit=5)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=4, maxPerPurchase=4))
    tokens = [make_token(f"h-claim-{i}") for i in range(3)]
    for token in tokens:
        await join(api, token, event["id"], "ADMITTED")
    # Three admitted for four tickets: the first may hold two, not three (two others need one each).
    refused = await hold(api, tokens[0], event["id"], [(general["id"], 3)])
    assert codes(refused) == ["INSUFFICIENT_INVENTORY"] and "hold 2" in refused["errors"][0]["message"]
    assert codes(await hold(api, tokens[0], event["id"], [(general["id"], 2)])) == []
    for token in tokens[1:]:
        assert codes(await hold(api, token, event["id"], [(general["id"], 1)])) == []
    assert (await api.db.events.find_one({"_id": ObjectId(event["id"])}))["claimableStock"] == 0


async def test_leaving_gives_the_hold_back_once(make_api, organizer):
    api = await make_api(checkout_limit=5)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=3))
    buyer, next_one = make_token("h-leaver"), make_token("h-next")
    await join(api, buyer, event["id"], "ADMITTED")
    assert codes(await hold(api, buyer, event["id"], [(general["id"], 3)])) == []
    assert (await join(api, next_one, event["id"]))["status"] == "WAITING"
    left, again = await asyncio.gather(api.mutate("LeaveQueue", {"eventId": event["id"]}, buyer),
                                       api.mutate("LeaveQueue", {"eventId": event["id"]}, buyer))
    assert sorted(map(len, (codes(left), codes(again)))) == [0, 1]
    stock = await stock_of(api, general["id"])
    assert (stock["quantitySold"], stock["quantityHeld"]) == (0, 0)
    entry = await wait_admitted(api, next_one, event["id"], timeout=5)
    assert entry["status"] == "ADMITTED"
    # The checkout ended with the hold: buying it now is refused.
    assert codes(await api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 3)]), buyer)) == [
        "CHECKOUT_EXPIRED"]


async def test_a_purchase_racing_the_expiry_of_its_hold_either_buys_it_or_gives_it_back(make_api, organizer):
    api = await make_api(checkout_limit=5)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=5))
    for round_ in range(6):
        user = f"h-race-{round_}"
        token = make_token(user)
        await join(api, token, event["id"], "ADMITTED")
        assert codes(await hold(api, token, event["id"], [(general["id"], 1)])) == []
        entry_doc = await entry_of(api, event["id"], user)
        # Due now: the purchase and the expiry read the same entry and race on the hold.
        await api.db.eventQueue.update_one({"_id": entry_doc["_id"]}, {"$set": {"expiresAtUtc": int(time.time() * 1000) + 30}})
        await asyncio.sleep(0.03)
        expiry = queue.expire_every_due_entry(api.runtime, event_id=event["id"])
        purchase = api.mutate("PurchaseTickets", buy_input(event["id"], [(general["id"], 1)], f"k-{round_}"), token)
        await asyncio.gather(expiry, purchase)
        stock = await stock_of(api, general["id"])
        issued = await api.db.userTickets.count_documents({"eventId": ObjectId(event["id"])})
        # Whoever won, the stock is counted once: sold for the issued tickets, nothing left held.
        assert (stock["quantitySold"], stock["quantityHeld"]) == (issued, 0), (round_, stock, issued)


async def test_the_repair_leaves_a_long_hold_alone_and_recounts_a_lost_one(make_api, organizer):
    api = await make_api(checkout_limit=5)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=5))
    buyer = make_token("h-repair")
    await join(api, buyer, event["id"], "ADMITTED")
    assert codes(await hold(api, buyer, event["id"], [(general["id"], 2)])) == []
    # The recount of a quiet sale counts the hold as sold: nothing to correct.
    assert not [c for c in await repair_counters(api.runtime, event_id=event["id"], settle_seconds=0.05)
                if "quantity" in c or "claimable" in c]
    stock = await stock_of(api, general["id"])
    assert (stock["quantitySold"], stock["quantityHeld"]) == (2, 2)
    # A hold whose process died between taking the stock and writing the entry: recounted.
    await api.db.eventTickets.update_one({"_id": ObjectId(general["id"])}, {"$inc": {"quantitySold": 1, "quantityHeld": 1}})
    corrections = await repair_counters(api.runtime, event_id=event["id"], settle_seconds=0.05)
    assert any("quantitySold" in c and "3 -> 2" in c for c in corrections), corrections
    assert any("quantityHeld" in c and "3 -> 2" in c for c in corrections), corrections
    order = await buy(api, buyer, event["id"], [(general["id"], 2)])
    assert len(order["tickets"]) == 2
    stock = await stock_of(api, general["id"])
    assert (stock["quantitySold"], stock["quantityHeld"]) == (2, 0)
    assert await repair_counters(api.runtime, event_id=event["id"], settle_seconds=0.05) == []
