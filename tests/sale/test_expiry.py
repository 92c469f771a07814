"""Expiry of admissions, checkout sessions and waiting places, with short settings.

Most tests run the app with its background sweep on (every 0.5 s) and watch
what happens to buyers who never come back, without anybody calling the API
in the meantime. One test runs without the sweep: expiry must then be
enforced when the expired buyer (or anyone deciding on their entry) calls.
"""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from app.config import Settings
from app.server import create_app
from tests.api_client import ApiClient
from tests.conftest import JWT_SECRET, make_token
from tests.factories import join, on_sale_event, session_status
from tests.sale.test_subscriptions import connector_of, purchase_input, subscribe

CHECKOUT_EXPIRY = 1
QUEUE_EXPIRY = 4


@pytest.fixture
def settings(mongo_uri: str) -> Settings:
    return Settings(
        mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, checkout_limit=1, checkout_expiry_seconds=CHECKOUT_EXPIRY,
        queue_expiry_seconds=QUEUE_EXPIRY, queue_cooldown_seconds=3600, _env_file=None,
    )


@pytest.fixture
def sweep() -> bool:
    """The background sweep runs in this module: nobody comes back for the idle buyers."""
    return True


# --- helpers -----------------------------------------------------------------------------------


async def entry_doc(api: ApiClient, event_id: str, user_id: str) -> dict:
    doc = await api.db.eventQueue.find_one({"eventId": ObjectId(event_id), "userId": user_id})
    assert doc is not None, (event_id, user_id)
    return doc


async def wait_for_status(api: ApiClient, event_id: str, user_id: str, status: str, timeout: float) -> float:
    """Poll the database until the buyer's entry has `status`; the loop time it was seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        doc = await entry_doc(api, event_id, user_id)
        if doc["status"] == status:
            return loop.time()
        if loop.time() > deadline:
            raise AssertionError(f"{user_id} still {doc['status']} after {timeout}s, expected {status}: {doc}")
        await asyncio.sleep(0.05)


async def session_doc(api: ApiClient, session_id: str) -> dict:
    """The session's record once it ended; while it is ACTIVE, its status alone (it lives on its entry)."""
    record = await api.db.checkoutSessions.find_one({"_id": ObjectId(session_id)})
    return record or {"status": await session_status(api, session_id)}


async def admitted_count(api: ApiClient, event_id: str) -> int:
    return await api.db.eventQueue.count_documents({"eventId": ObjectId(event_id), "status": "ADMITTED"})


async def event_counter(api: ApiClient, event_id: str) -> int:
    return (await api.db.events.find_one({"_id": ObjectId(event_id)})).get("activeCheckouts", 0)


async def assert_active_checkouts_match(api: ApiClient, event_id: str) -> dict:
    """activeCheckouts, as the API shows it (eventInventory) and as stored on the event, equals the
    number of ADMITTED entries. Read at a moment when nothing changed meanwhile (expiry runs on its own)."""
    for _ in range(20):
        before = (await admitted_count(api, event_id), await event_counter(api, event_id))
        async with subscribe(connector_of(api), "EventInventory", {"eventId": event_id}) as sub:
            _, inventory = await sub.next_value("eventInventory")
        after = (await admitted_count(api, event_id), await event_counter(api, event_id))
        if before == after:
            admitted, stored = after
            assert inventory["activeCheckouts"] == admitted == stored, (inventory, admitted, stored)
            return inventory
        await asyncio.sleep(0.1)
    raise AssertionError("the queue never held still long enough to compare activeCheckouts")


async def error_codes_of(api: ApiClient, name: str, variables: dict, token: str) -> list[str]:
    payload = await api.mutate(name, variables, token)
    return [e["code"] for e in payload["errors"]]


# --- with the sweep ----------------------------------------------------------------------------


async def test_an_idle_admitted_buyer_loses_the_slot_to_the_next_buyer(api, organizer):
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b = make_token("buyer-a"), make_token("buyer-b")
    loop = asyncio.get_running_loop()

    admitted_at = loop.time()
    first = await join(api, a, eid, "ADMITTED")
    waiting = await join(api, b, eid, "WAITING")
    async with (
        subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, a) as a_updates,
        subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, b) as b_updates,
    ):
        _, a_now = await a_updates.next_value("queueUpdates")
        _, b_now = await b_updates.next_value("queueUpdates")
        assert (a_now["status"], b_now["status"], b_now["position"]) == ("ADMITTED", "WAITING", 1)
        # Nobody calls the API from here on: only the sweep can move the queue.
        seen = await b_updates.until("queueUpdates", lambda e: e["status"] == "ADMITTED", timeout=4.0)
        b_admitted_at = seen[-1][0]
        a_seen = await a_updates.until("queueUpdates", lambda e: e["status"] == "EXPIRED", timeout=2.0)

    waited = b_admitted_at - admitted_at
    assert CHECKOUT_EXPIRY - 0.1 <= waited <= CHECKOUT_EXPIRY + 1.5, f"B was admitted {waited:.2f}s after A"
    assert seen[-1][1]["seq"] == waiting["seq"] and a_seen[-1][1]["seq"] == first["seq"]
    a_doc = await entry_doc(api, eid, "buyer-a")
    assert a_doc["status"] == "EXPIRED" and not a_doc.get("sessionId"), a_doc

    # Coming back too late: the turn has passed.
    assert await error_codes_of(api, "StartCheckout", {"eventId": eid}, a) == ["CHECKOUT_EXPIRED"]
    assert (await entry_doc(api, eid, "buyer-a"))["status"] == "EXPIRED"
    await assert_active_checkouts_match(api, eid)


async def test_an_idle_active_session_expires_and_the_next_buyer_is_admitted(api, organizer):
    event, (general,) = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b = make_token("buyer-a"), make_token("buyer-b")
    loop = asyncio.get_running_loop()

    await join(api, a, eid, "ADMITTED")
    await asyncio.sleep(0.6)
    started = loop.time()
    session = (await api.ok("StartCheckout", {"eventId": eid}, a))["session"]
    assert session["status"] == "ACTIVE"
    await join(api, b, eid, "WAITING")

    # Past the admission's own deadline, the session's newer one still holds the slot.
    await asyncio.sleep(0.6)
    assert (await entry_doc(api, eid, "buyer-a"))["status"] == "ADMITTED"
    assert (await session_doc(api, session["id"]))["status"] == "ACTIVE"

    seen_at = await wait_for_status(api, eid, "buyer-b", "ADMITTED", timeout=3.0)
    assert seen_at - started <= CHECKOUT_EXPIRY + 1.5, f"B admitted {seen_at - started:.2f}s after A's checkout began"
    expired = await session_doc(api, session["id"])
    assert expired["status"] == "EXPIRED" and expired.get("endedAtUtc"), expired
    assert (await entry_doc(api, eid, "buyer-a"))["status"] == "EXPIRED"
    a_entry = (await api.data("QueuePosition", {"eventId": eid}, a))["queuePosition"]
    assert a_entry["status"] == "EXPIRED"

    # Too late to buy, too late to start again; nothing was sold.
    assert await error_codes_of(api, "PurchaseTickets", purchase_input(eid, general["id"], 2), a) == ["CHECKOUT_EXPIRED"]
    assert await error_codes_of(api, "StartCheckout", {"eventId": eid}, a) == ["CHECKOUT_EXPIRED"]
    assert await api.db.userTickets.count_documents({"userId": "buyer-a"}) == 0
    read = (await api.data("Event", {"id": eid}))["event"]
    assert read["ticketsRemaining"] == 100
    await assert_active_checkouts_match(api, eid)


async def test_an_expired_buyer_may_join_again_at_the_back_with_a_higher_seq(api, organizer):
    event, (general,) = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b = make_token("buyer-a"), make_token("buyer-b")

    first = await join(api, a, eid, "ADMITTED")
    second = await join(api, b, eid, "WAITING")
    await wait_for_status(api, eid, "buyer-b", "ADMITTED", timeout=3.0)
    assert (await entry_doc(api, eid, "buyer-a"))["status"] == "EXPIRED"
    await api.ok("StartCheckout", {"eventId": eid}, b)  # B holds the slot for another second

    again = await join(api, a, eid, "WAITING")
    assert again["seq"] > second["seq"] > first["seq"], (first["seq"], second["seq"], again["seq"])
    assert again["position"] == 1 and again["admittedAt"] is None
    # The old place is history, not a second entry.
    assert await api.db.eventQueue.count_documents({"eventId": ObjectId(eid), "userId": "buyer-a"}) == 1

    # B idles in checkout too; A is admitted from the new place and can buy.
    await wait_for_status(api, eid, "buyer-a", "ADMITTED", timeout=3.0)
    assert (await entry_doc(api, eid, "buyer-b"))["status"] == "EXPIRED"
    await api.ok("StartCheckout", {"eventId": eid}, a)
    order = (await api.ok("PurchaseTickets", purchase_input(eid, general["id"], 2), a))["order"]
    assert len(order["tickets"]) == 2
    assert await api.db.userTickets.count_documents({"userId": "buyer-a"}) == 2
    final = (await api.data("QueuePosition", {"eventId": eid}, a))["queuePosition"]
    assert (final["status"], final["seq"]) == ("COMPLETED", again["seq"])
    inventory = await assert_active_checkouts_match(api, eid)
    assert (inventory["activeCheckouts"], inventory["waitingCount"], inventory["ticketsRemaining"]) == (0, 0, 98)


async def test_a_waiting_place_expires_after_the_queue_expiry(aiohttp_client, mongo_uri, organizer):
    """A slot held for long (checkout expiry 60 s); the place behind it lives QUEUE_EXPIRY_SECONDS=1."""
    settings = Settings(
        mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, checkout_limit=1, checkout_expiry_seconds=60,
        queue_expiry_seconds=1, _env_file=None,
    )
    app = create_app(settings, sweep=True)
    api = ApiClient(await aiohttp_client(app), app)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b = make_token("buyer-a"), make_token("buyer-b")
    await join(api, a, eid, "ADMITTED")
    waiting = await join(api, b, eid, "WAITING")

    async with subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, b) as updates:
        _, now = await updates.next_value("queueUpdates")
        assert now["status"] == "WAITING"
        seen = await updates.until("queueUpdates", lambda e: e["status"] == "EXPIRED", timeout=3.0)
        assert seen[-1][1]["seq"] == waiting["seq"] and seen[-1][1]["position"] is None

    assert (await entry_doc(api, eid, "buyer-a"))["status"] == "ADMITTED"  # the holder keeps the slot
    inventory = await assert_active_checkouts_match(api, eid)
    assert (inventory["activeCheckouts"], inventory["waitingCount"]) == (1, 0)
    rejoined = await join(api, b, eid, "WAITING")
    assert rejoined["seq"] > waiting["seq"] and rejoined["position"] == 1


# --- without the sweep -------------------------------------------------------------------------


async def test_expiry_is_enforced_without_the_sweep_when_the_buyer_comes_back(aiohttp_client, settings, organizer):
    app = create_app(settings, sweep=False)
    api = ApiClient(await aiohttp_client(app), app)
    event, (general,) = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b, c = make_token("buyer-a"), make_token("buyer-b"), make_token("buyer-c")

    # An admission nobody used: overdue, but nothing has looked at it yet.
    await join(api, a, eid, "ADMITTED")
    waiting = await join(api, b, eid, "WAITING")
    await asyncio.sleep(CHECKOUT_EXPIRY + 0.3)
    assert (await entry_doc(api, eid, "buyer-a"))["status"] == "ADMITTED"
    assert (await entry_doc(api, eid, "buyer-b"))["status"] == "WAITING"

    assert await error_codes_of(api, "StartCheckout", {"eventId": eid}, a) == ["CHECKOUT_EXPIRED"]
    assert (await entry_doc(api, eid, "buyer-a"))["status"] == "EXPIRED"
    b_doc = await entry_doc(api, eid, "buyer-b")
    assert b_doc["status"] == "ADMITTED" and b_doc["seq"] == waiting["seq"]  # admitted at that moment
    assert await api.db.checkoutSessions.count_documents({"userId": "buyer-a"}) == 0

    # An ACTIVE session nobody used: overdue; the purchase attempt ends it.
    session = (await api.ok("StartCheckout", {"eventId": eid}, b))["session"]
    await join(api, c, eid, "WAITING")
    await asyncio.sleep(CHECKOUT_EXPIRY + 0.3)
    assert (await session_doc(api, session["id"]))["status"] == "ACTIVE"
    assert (await entry_doc(api, eid, "buyer-c"))["status"] == "WAITING"

    assert await error_codes_of(api, "PurchaseTickets", purchase_input(eid, general["id"], 1), b) == ["CHECKOUT_EXPIRED"]
    assert (await session_doc(api, session["id"]))["status"] == "EXPIRED"
    assert (await entry_doc(api, eid, "buyer-b"))["status"] == "EXPIRED"
    assert (await entry_doc(api, eid, "buyer-c"))["status"] == "ADMITTED"
    assert await error_codes_of(api, "StartCheckout", {"eventId": eid}, b) == ["CHECKOUT_EXPIRED"]
    assert await api.db.userTickets.count_documents({}) == 0

    inventory = await assert_active_checkouts_match(api, eid)
    assert (inventory["activeCheckouts"], inventory["waitingCount"], inventory["ticketsRemaining"]) == (1, 0, 100)
