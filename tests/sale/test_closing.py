"""The queue closes at sell-out and at cancellation: nobody waits for a ticket that no longer exists.

DESIGN section 3: every WAITING entry, and every ADMITTED one with no ACTIVE
session, becomes CLOSED at once and frees its slot; each subscriber hears it
within a second; a buyer in an ACTIVE session keeps it until it ends; stock
that comes back reopens the sale, and CLOSED buyers may join again.
"""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from app.queue import repository as queue_repo
from app.queue import service as queue
from tests.api_client import ApiClient
from tests.conftest import make_token
from tests.factories import active_sessions, admit_beyond_stock, create_tickets, on_sale_event, ticket_type_input
from tests.sale.test_subscriptions import checkout, connector_of, purchase_input, subscribe

HEARD_WITHIN = 1.0


@pytest.fixture
async def sale(make_api):
    """CHECKOUT_LIMIT 3 and 2 tickets: A and B check out, C is admitted, D and E wait."""
    api: ApiClient = await make_api(checkout_limit=3)
    organizer = make_token("org-close", "organizer")
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=2, maxPerPurchase=2))
    eid = event["id"]
    await admit_beyond_stock(api, eid)  # C: admitted with no ticket to claim, as before checkout holds
    buyers = {name: make_token(f"buyer-{name}") for name in "abcde"}
    await checkout(api, buyers["a"], eid)
    await checkout(api, buyers["b"], eid)
    assert (await api.ok("JoinQueue", {"eventId": eid}, buyers["c"]))["entry"]["status"] == "ADMITTED"
    for name in "de":
        assert (await api.ok("JoinQueue", {"eventId": eid}, buyers[name]))["entry"]["status"] == "WAITING"
    return api, organizer, eid, general, buyers


async def entry_status(api: ApiClient, eid: str, token: str) -> str:
    return (await api.data("QueuePosition", {"eventId": eid}, token))["queuePosition"]["status"]


async def active_checkouts(api: ApiClient, eid: str) -> int:
    return (await api.db.events.find_one({"_id": ObjectId(eid)}))["activeCheckouts"]


async def test_the_last_ticket_closes_the_queue_and_every_waiting_subscriber_hears_it(sale):
    api, _, eid, general, buyers = sale
    connect = connector_of(api)
    async with (
        subscribe(connect, "QueueUpdates", {"eventId": eid}, buyers["c"], op_id="c") as c,
        subscribe(connect, "QueueUpdates", {"eventId": eid}, buyers["d"], op_id="d") as d,
        subscribe(connect, "QueueUpdates", {"eventId": eid}, buyers["e"], op_id="e") as e,
    ):
        for sub, status in ((c, "ADMITTED"), (d, "WAITING"), (e, "WAITING")):
            assert (await sub.next_value("queueUpdates"))[1]["status"] == status

        loop = asyncio.get_running_loop()
        started = loop.time()
        await api.ok("PurchaseTickets", purchase_input(eid, general["id"], quantity=2), buyers["a"])
        for sub in (c, d, e):
            seen = await sub.until("queueUpdates", lambda v: v["status"] == "CLOSED", timeout=5)
            heard_at, closed = seen[-1]
            assert heard_at - started < HEARD_WITHIN, f"CLOSED heard {heard_at - started:.3f}s after the purchase began"
            assert closed["position"] is None

    # B is in an ACTIVE session: it keeps it, and its purchase answers SOLD_OUT. (Waiting buyers hear
    # CLOSED before the closing has written their entries and freed the slots: let it finish.)
    await api.runtime.closings.idle()
    assert await entry_status(api, eid, buyers["b"]) == "ADMITTED"
    assert await active_checkouts(api, eid) == 1, "only B's slot is still held"
    refused = await api.mutate("PurchaseTickets", purchase_input(eid, general["id"]), buyers["b"])
    assert [x["code"] for x in refused["errors"]] == ["SOLD_OUT"]

    # Nobody new gets in line, and a CLOSED buyer is told why at checkout.
    late = await api.mutate("JoinQueue", {"eventId": eid}, make_token("buyer-late"))
    assert [x["code"] for x in late["errors"]] == ["SOLD_OUT"] and late["entry"] is None
    assert await api.db.eventQueue.count_documents({"eventId": ObjectId(eid), "userId": "buyer-late"}) == 0
    again = await api.mutate("JoinQueue", {"eventId": eid}, buyers["d"])
    assert [x["code"] for x in again["errors"]] == ["SOLD_OUT"]
    started = await api.mutate("StartCheckout", {"eventId": eid}, buyers["c"])
    assert [x["code"] for x in started["errors"]] == ["SOLD_OUT"]
    statuses = {name: await entry_status(api, eid, token) for name, token in buyers.items()}
    assert statuses == {"a": "COMPLETED", "b": "ADMITTED", "c": "CLOSED", "d": "CLOSED", "e": "CLOSED"}


async def test_a_waiting_buyer_hears_closed_at_once_while_the_closing_has_yet_to_write_it(sale, monkeypatch):
    """A sell-out's closing writes every WAITING entry, a chunk at a time: behind thousands that
    takes seconds. Each waiting buyer is told at once, from the queue's turns (no turn is given
    once the sale is SOLD_OUT, so the closing will close them), and reads CLOSED too."""
    api, _, eid, general, buyers = sale
    release = asyncio.Event()
    real_close = queue_repo.close

    async def held_close(*args, **kwargs):
        await release.wait()
        async for chunk in real_close(*args, **kwargs):
            yield chunk

    monkeypatch.setattr(queue_repo, "close", held_close)
    connect = connector_of(api)
    async with subscribe(connect, "QueueUpdates", {"eventId": eid}, buyers["d"], op_id="d") as d:
        assert (await d.next_value("queueUpdates"))[1]["status"] == "WAITING"
        started = asyncio.get_running_loop().time()
        await api.ok("PurchaseTickets", purchase_input(eid, general["id"], quantity=2), buyers["a"])
        heard_at, closed = (await d.until("queueUpdates", lambda v: v["status"] == "CLOSED", timeout=5))[-1]
        assert heard_at - started < HEARD_WITHIN and closed["position"] is None
        stored = await api.db.eventQueue.find_one({"eventId": ObjectId(eid), "userId": "buyer-d"})
        assert stored["status"] == "WAITING", "the closing was held: this test proves nothing"
        assert await entry_status(api, eid, buyers["d"]) == "CLOSED"
        # C was ADMITTED before the sell-out: its turn came, so only the closing decides for it.
        assert await entry_status(api, eid, buyers["c"]) == "ADMITTED"

        release.set()
        await api.runtime.closings.idle()
        stored = await api.db.eventQueue.find_one({"eventId": ObjectId(eid), "userId": "buyer-d"})
        assert stored["status"] == "CLOSED"
        await d.silent_for(0.3)  # told once: the closing's own message changes nothing it was shown


async def test_stock_that_comes_back_reopens_the_sale_for_closed_buyers(sale):
    api, organizer, eid, general, buyers = sale
    await api.ok("PurchaseTickets", purchase_input(eid, general["id"], quantity=2), buyers["a"])
    assert await entry_status(api, eid, buyers["d"]) == "CLOSED"
    assert (await api.data("Event", {"id": eid}))["event"]["status"] == "SOLD_OUT"
    await api.runtime.closings.idle()  # the closing has written what D was shown

    await create_tickets(api, organizer, eid, ticket_type_input(type="VIP", quantityTotal=5))
    assert (await api.data("Event", {"id": eid}))["event"]["status"] == "ON_SALE"
    before = (await api.data("QueuePosition", {"eventId": eid}, buyers["d"]))["queuePosition"]["seq"]
    rejoined = (await api.ok("JoinQueue", {"eventId": eid}, buyers["d"]))["entry"]
    # B still holds one slot of three: D gets a fresh place at the back, and a free slot.
    assert rejoined["status"] == "ADMITTED" and rejoined["seq"] > before


async def test_cancellation_closes_the_queue_and_tells_every_subscriber(sale):
    api, organizer, eid, _, buyers = sale
    connect = connector_of(api)
    async with (
        subscribe(connect, "QueueUpdates", {"eventId": eid}, buyers["b"], op_id="b") as b,
        subscribe(connect, "QueueUpdates", {"eventId": eid}, buyers["e"], op_id="e") as e,
    ):
        for sub in (b, e):
            await sub.next_value("queueUpdates")
        await api.ok("CancelEvent", {"eventId": eid}, organizer)
        for sub in (b, e):
            await sub.until("queueUpdates", lambda v: v["status"] == "CLOSED", timeout=HEARD_WITHIN)
    assert {await entry_status(api, eid, t) for t in buyers.values()} == {"CLOSED"}
    assert await active_sessions(api, eventId=ObjectId(eid)) == 0
    assert await active_checkouts(api, eid) == 0


async def test_a_buyer_left_waiting_by_a_closing_that_raced_a_join_is_closed_by_the_sweep(sale):
    """A join that read ON_SALE just before the last ticket went writes its WAITING entry after
    the queue closed: the admission backstop (the sweep's) closes it instead of leaving it waiting."""
    api, _, eid, general, buyers = sale
    await api.ok("PurchaseTickets", purchase_input(eid, general["id"], quantity=2), buyers["a"])
    late = await api.db.eventQueue.find_one({"eventId": ObjectId(eid), "userId": "buyer-d"})
    await api.db.eventQueue.update_one(
        {"_id": late["_id"]}, {"$set": {"status": "WAITING", "expiresAtUtc": late["expiresAtUtc"] + 3_600_000}}
    )
    assert await queue.admit_where_possible(api.runtime) == 0
    assert await entry_status(api, eid, buyers["d"]) == "CLOSED"
    assert await api.db.eventQueue.count_documents({"eventId": ObjectId(eid), "status": "WAITING"}) == 0
