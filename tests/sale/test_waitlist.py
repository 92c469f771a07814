"""The waitlist (issue 11 part 3): once nothing is left to claim, buyers wait for tickets that come
back; the oldest whose wish fits get a timed offer, pushed on their queueUpdates, bought through
the normal checkout; an offer not used in time goes to the next buyer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack

from bson import ObjectId

from app.catalog import service as catalog
from app.flows.repair import repair
from app.orders.models import OrderState
from app.waitlist import service as waitlist
from tests.conftest import make_token
from tests.factories import buy, checkout, codes, join, on_sale_event, stuck_order, ticket_type_input
from tests.sale.test_holds import hold, stock_of
from tests.sale.test_subscriptions import connector_of, subscribe

OFFER_SECONDS = 2
# Wishes of the ten waitlisted buyers, oldest first.
WISHES = [4, 2, 2, 1, 1, 1, 1, 1, 1, 1]


async def waitlist_of(api, event_id: str) -> dict[str, str]:
    return {d["userId"]: d["status"] async for d in api.db.waitlist.find({"eventId": ObjectId(event_id)})}


async def test_returned_tickets_are_offered_to_the_oldest_fitting_buyers_and_a_lapsed_offer_moves_on(make_api, organizer):
    api = await make_api(checkout_limit=10, checkout_expiry_seconds=OFFER_SECONDS, waitlist_offer_seconds=OFFER_SECONDS,
                         sweep=True)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=5, maxPerPurchase=4))
    eid, tid = event["id"], general["id"]
    holders = [make_token(f"wl-holder-{i}") for i in range(5)]
    for token in holders:
        await join(api, token, eid, "ADMITTED")
        assert codes(await hold(api, token, eid, [(tid, 1)])) == []
    for token in holders[:2]:
        await buy(api, token, eid, [(tid, 1)])

    # Nothing left to claim: the queue turns newcomers away, and the waitlist takes them.
    catalog.forget_sale_view(eid)
    assert codes(await api.mutate("JoinQueue", {"eventId": eid}, make_token("wl-late"))) == ["SOLD_OUT"]
    waiters = [make_token(f"wl-{i}") for i in range(len(WISHES))]
    for i, (token, wish) in enumerate(zip(waiters, WISHES)):
        joined = await api.mutate("JoinWaitlist", {"eventId": eid, "items": [{"ticketTypeId": tid, "quantity": wish}]},
                                  token)
        assert codes(joined) == [] and joined["entry"]["status"] == "WAITING", joined
        assert joined["entry"]["position"] == i + 1
    again = await api.mutate("JoinWaitlist", {"eventId": eid, "items": [{"ticketTypeId": tid, "quantity": 1}]}, waiters[1])
    assert again["entry"]["items"] == [{"ticketTypeId": tid, "quantity": 2}] and again["entry"]["position"] == 2

    async with AsyncExitStack() as stack:
        subs = {i: await stack.enter_async_context(subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, waiters[i]))
                for i in (1, 3, 4)}
        # Three holds lapse: 3 tickets come back. wl-0 wants 4 and wl-2 wants 2 (after wl-1 took 2): they do not fit.
        for i in (1, 3):
            pushed = await subs[i].until("queueUpdates", lambda e: e["status"] == "ADMITTED", timeout=OFFER_SECONDS + 5)
            assert pushed[-1][1]["status"] == "ADMITTED"
        statuses = await waitlist_of(api, eid)
        assert [statuses[f"wl-{i}"] for i in range(5)] == ["WAITING", "OFFERED", "WAITING", "OFFERED", "WAITING"]
        stock = await stock_of(api, tid)
        assert (stock["quantitySold"], stock["quantityHeld"], stock["quantityOffered"]) == (5, 3, 3)
        assert (await api.db.events.find_one({"_id": ObjectId(eid)}))["status"] in ("ON_SALE", "SOLD_OUT")
        shown = (await api.data("WaitlistEntry", {"eventId": eid}, waiters[1]))["waitlistEntry"]
        assert shown["status"] == "OFFERED" and shown["offerExpiresAt"] is not None

        # wl-1 buys its offer through the normal checkout: the session holds it already.
        session = (await api.ok("StartCheckout", {"eventId": eid}, waiters[1]))["session"]
        assert session["heldItems"] == [{"ticketTypeId": tid, "quantity": 2}]
        await buy(api, waiters[1], eid, [(tid, 2)], key="wl-1-buys")
        # wl-3 lets its offer lapse: it moves on to wl-4, the next whose wish fits.
        pushed = await subs[4].until("queueUpdates", lambda e: e["status"] == "ADMITTED", timeout=OFFER_SECONDS + 5)
        assert pushed[-1][1]["status"] == "ADMITTED"
    order = await buy(api, waiters[4], eid, [(tid, 1)], key="wl-4-buys")
    assert len(order["tickets"]) == 1
    # A lapsed offer is not made twice: wl-3 is off the list, and its purchase is refused.
    late = await api.mutate("PurchaseTickets", {"input": {"eventId": eid, "idempotencyKey": "wl-3-late",
                                                          "items": [{"ticketTypeId": tid, "quantity": 1}]}}, waiters[3])
    assert codes(late) == ["CHECKOUT_EXPIRED"]

    await asyncio.sleep(1.0)  # a sweep round settles the offers
    statuses = await waitlist_of(api, eid)
    assert [statuses[f"wl-{i}"] for i in range(5)] == ["WAITING", "BOUGHT", "WAITING", "LAPSED", "BOUGHT"]
    # No oversell anywhere: the documents agree.
    stock = await stock_of(api, tid)
    issued = await api.db.userTickets.count_documents({"eventId": ObjectId(eid)})
    assert (stock["quantitySold"], stock["quantityHeld"], stock["quantityOffered"], issued) == (5, 0, 0, 5)
    per_buyer = Counter([d["userId"] async for d in api.db.userTickets.find({"eventId": ObjectId(eid)})])
    assert per_buyer == {"wl-holder-0": 1, "wl-holder-1": 1, "wl-1": 2, "wl-4": 1}
    assert (await api.db.events.find_one({"_id": ObjectId(eid)}))["status"] == "SOLD_OUT"


async def test_the_waitlist_opens_only_when_nothing_is_left_and_a_buyer_may_leave_it(make_api, organizer):
    api = await make_api(checkout_limit=5, waitlist_offer_seconds=60)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=2, maxPerPurchase=2))
    eid, tid = event["id"], general["id"]
    wish = {"eventId": eid, "items": [{"ticketTypeId": tid, "quantity": 1}]}
    early = await api.mutate("JoinWaitlist", wish, make_token("wl-early"))
    assert codes(early) == ["NOT_SOLD_OUT"]
    assert await api.db.waitlist.count_documents({}) == 0
    buyer = make_token("wl-buyer")
    await checkout(api, buyer, eid)
    await buy(api, buyer, eid, [(tid, 2)])
    too_many = await api.mutate("JoinWaitlist", {**wish, "items": [{"ticketTypeId": tid, "quantity": 3}]}, make_token("wl-a"))
    assert codes(too_many) == ["PURCHASE_LIMIT_EXCEEDED"] and too_many["errors"][0]["field"] == "items.0.quantity"
    assert codes(await api.mutate("JoinWaitlist", {**wish, "items": []}, make_token("wl-a"))) == ["VALIDATION"]
    a, b = make_token("wl-a"), make_token("wl-b")
    assert (await api.ok("JoinWaitlist", wish, a))["entry"]["position"] == 1
    assert (await api.ok("JoinWaitlist", wish, b))["entry"]["position"] == 2
    left = await api.ok("LeaveWaitlist", {"eventId": eid}, a)
    assert left["entry"]["status"] == "LEFT"
    assert codes(await api.mutate("LeaveWaitlist", {"eventId": eid}, a)) == ["NOT_ON_WAITLIST"]
    assert (await api.data("WaitlistEntry", {"eventId": eid}, b))["waitlistEntry"]["position"] == 1
    # Joining again after leaving: a new place, at the back.
    assert (await api.ok("JoinWaitlist", wish, a))["entry"]["position"] == 2
    assert (await api.data("WaitlistEntry", {"eventId": eid}, make_token("wl-never")))["waitlistEntry"] is None


async def test_leaving_with_an_offer_passes_it_on_at_once(make_api, organizer):
    api = await make_api(checkout_limit=5, checkout_expiry_seconds=60, waitlist_offer_seconds=60)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=1))
    eid, tid = event["id"], general["id"]
    holder = make_token("wl-h")
    await join(api, holder, eid, "ADMITTED")
    assert codes(await hold(api, holder, eid, [(tid, 1)])) == []
    wish = {"eventId": eid, "items": [{"ticketTypeId": tid, "quantity": 1}]}
    first, second = make_token("wl-first"), make_token("wl-second")
    await api.ok("JoinWaitlist", wish, first)
    await api.ok("JoinWaitlist", wish, second)
    await api.ok("LeaveQueue", {"eventId": eid}, holder)  # the hold comes back
    # The sweep's step, run here (this app has no sweep).
    assert [e.user_id for e in await waitlist.offer_returned_stock(api.runtime, event_id=eid)] == ["wl-first"]
    assert (await api.data("QueuePosition", {"eventId": eid}, first))["queuePosition"]["status"] == "ADMITTED"
    await api.ok("LeaveWaitlist", {"eventId": eid}, first)
    statuses = await waitlist_of(api, eid)
    assert (statuses["wl-first"], statuses["wl-second"]) == ("LEFT", "OFFERED")
    stock = await stock_of(api, tid)
    assert (stock["quantitySold"], stock["quantityHeld"], stock["quantityOffered"]) == (1, 1, 1)
    await buy(api, second, eid, [(tid, 1)])
    stock = await stock_of(api, tid)
    assert (stock["quantitySold"], stock["quantityHeld"], stock["quantityOffered"]) == (1, 0, 0)


async def test_stock_an_undone_order_gives_back_goes_to_the_waitlist_before_the_queue(make_api, organizer):
    api = await make_api(checkout_limit=5, waitlist_offer_seconds=60)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=2))
    eid, tid = event["id"], general["id"]
    await checkout(api, make_token("wl-paid"), eid)
    await buy(api, make_token("wl-paid"), eid, [(tid, 1)])
    # A purchase that took the last ticket and died before issuing it.
    await stuck_order(api.db, event_id=eid, user="wl-crashed", session_id=str(ObjectId()), items=[(general, 1)],
                      state=OrderState.PENDING, key="crashed")
    waiter = make_token("wl-waiter")
    assert (await api.ok("JoinWaitlist", {"eventId": eid, "items": [{"ticketTypeId": tid, "quantity": 1}]}, waiter))[
        "entry"]["position"] == 1
    report = await repair(api.runtime, grace_ms=0, settle_seconds=0.05)
    assert report.orders_undone == 1
    # The ticket it gave back was offered at once: the event stays sold out, its queue closed to newcomers.
    assert (await waitlist_of(api, eid))["wl-waiter"] == "OFFERED"
    assert (await api.db.events.find_one({"_id": ObjectId(eid)}))["status"] == "SOLD_OUT"
    catalog.forget_sale_view(eid)
    assert codes(await api.mutate("JoinQueue", {"eventId": eid}, make_token("wl-newcomer"))) == ["SOLD_OUT"]
    await buy(api, waiter, eid, [(tid, 1)])
    stock = await stock_of(api, tid)
    issued = await api.db.userTickets.count_documents({"eventId": ObjectId(eid)})
    assert (stock["quantitySold"], stock["quantityHeld"], stock["quantityOffered"], issued) == (2, 0, 0, 2)
