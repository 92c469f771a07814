"""Valid inputs to start from; tests override one field to make it wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from app.catalog import service as catalog
from app.runtime import offline_runtime
from app.orders import codes as ticket_codes
from app.orders import service as orders_service
from app.orders.models import Order, OrderItem, OrderState, PlannedTicket
from app.timeutil import now_ms
from tests.api_client import ApiClient
from tests.conftest import make_token


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def days_from_now(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def venue_input(**overrides: Any) -> dict:
    return {
        "name": "Wembley Stadium", "address": "Wembley, London HA9 0WS", "city": "London", "country": "GB",
        "timezone": "Europe/London", "latitude": 51.556, "longitude": -0.2796, "capacity": 90000,
    } | overrides


def event_input(venue_id: str, **overrides: Any) -> dict:
    return {
        "title": "Renaissance World Tour", "description": "Live in concert.", "artistId": "artist-beyonce",
        "artistName": "Beyoncé", "venueId": venue_id, "startsAt": iso(days_from_now(30)),
        "endsAt": iso(days_from_now(30) + timedelta(hours=3)),
    } | overrides


def ticket_type_input(**overrides: Any) -> dict:
    return {
        "type": "GENERAL", "priceCents": 9900, "currency": "GBP", "quantityTotal": 100, "maxPerPurchase": 4,
        "saleStartsAt": iso(days_from_now(-1)), "saleEndsAt": iso(days_from_now(29)),
    } | overrides


async def create_venue(api: ApiClient, token: str, **overrides: Any) -> dict:
    return (await api.ok("CreateVenue", {"input": venue_input(**overrides)}, token))["venue"]


async def create_event(api: ApiClient, token: str, venue_id: str | None = None, **overrides: Any) -> dict:
    if venue_id is None:
        venue_id = (await create_venue(api, token))["id"]
    return (await api.ok("CreateEvent", {"input": event_input(venue_id, **overrides)}, token))["event"]


async def create_tickets(api: ApiClient, token: str, event_id: str, *types: dict) -> list[dict]:
    payload = await api.ok("CreateTickets", {"input": {"eventId": event_id, "ticketTypes": list(types)}}, token)
    return payload["ticketTypes"]


async def gate_staff(api: ApiClient, organizer: str, event_id: str, user: str = "gate-1") -> str:
    """A staff token for `user`, assigned by the event's organizer to check tickets in at it."""
    staff = (await api.ok("AssignEventStaff", {"eventId": event_id, "userId": user}, organizer))["staff"]
    assert user in staff["userIds"], staff
    return make_token(user, "staff")


async def on_sale_event(api: ApiClient, token: str, *types: dict) -> tuple[dict, list[dict]]:
    """An event with ticket types on sale now (one GENERAL type of 100 unless given)."""
    event = await create_event(api, token)
    tickets = await create_tickets(api, token, event["id"], *(types or (ticket_type_input(),)))
    return event, tickets


async def admit_beyond_stock(api: ApiClient, event_id: str) -> None:
    """Let the event admit buyers beyond its stock, as events stored before checkout holds do
    (no claimableStock, app/catalog/turns.py): for tests of buyers racing for the last tickets,
    which the purchase's guarded counters must settle without an oversell."""
    await api.db.events.update_one({"_id": ObjectId(event_id)}, {"$unset": {"claimableStock": ""}})


async def stuck_order(
    db, *, event_id: str, user: str, session_id: str, items: list[tuple[dict, int]], state: OrderState,
    key: str, take_stock: bool = True, age_ms: int = 60_000,
) -> Order:
    """Write what a purchase that crashed after its PENDING (or RESERVED) step leaves behind.

    The document is built with the order model and the ticket code generators the
    purchase itself uses, and the stock is taken with the same guarded counter.
    """
    order_items = [
        OrderItem(ticketTypeId=t["id"], type=t["type"], quantity=q, unitPriceCents=t["priceCents"]) for t, q in items
    ]
    planned = [
        PlannedTicket(
            id=str(ObjectId()), ticketTypeId=item.ticket_type_id, type=item.type,
            ticketNumber=ticket_codes.ticket_number(), confirmationCode=ticket_codes.confirmation_code(),
        )
        for item in order_items
        for _ in range(item.quantity)
    ]
    stamp = now_ms() - age_ms
    order = Order.model_validate({
        "_id": str(ObjectId()), "eventId": event_id, "userId": user, "sessionId": session_id,
        "idempotencyKey": key,
        "requestHash": orders_service._request_hash(
            event_id, [orders_service.PurchaseItem(t["id"], q) for t, q in items]
        ),
        "items": [i.model_dump(by_alias=True) for i in order_items],
        "tickets": [p.model_dump(by_alias=True) for p in planned],
        "state": state, "totalCents": sum(i.quantity * i.unit_price_cents for i in order_items),
        "currency": items[0][0]["currency"], "createdAtUtc": stamp, "updatedAtUtc": stamp,
    })
    await db.orders.insert_one(order.to_doc())
    if take_stock:
        for item in order_items:
            assert await catalog.reserve_inventory(offline_runtime(db), ticket_type_id=item.ticket_type_id, quantity=item.quantity) is not None
    return order


# Entries holding an ACTIVE checkout session: a session lives on its ADMITTED entry, and its
# record in checkoutSessions is written when it ends (app/checkout/service.py).
ACTIVE_SESSIONS = {"status": "ADMITTED", "sessionId": {"$ne": None}}


async def active_sessions(api: ApiClient, **query) -> int:
    """How many ACTIVE checkout sessions match `query` (fields of their entries)."""
    return await api.db.eventQueue.count_documents({**query, **ACTIVE_SESSIONS})


async def session_status(api: ApiClient, session_id: str) -> str:
    """ACTIVE while its ADMITTED entry holds it; then what its record says."""
    record = await api.db.checkoutSessions.find_one({"_id": ObjectId(session_id)})
    if record is not None:
        return record["status"]
    holder = await api.db.eventQueue.find_one({"sessionId": ObjectId(session_id)})
    assert holder is not None and holder["status"] == "ADMITTED", (session_id, holder)
    return "ACTIVE"


# --- a buyer's steps, one argument order: (api, token, event_id, ...) ------------------------


def codes(payload: dict) -> list[str]:
    """The codes of a payload's UserErrors, in order."""
    return [e["code"] for e in payload["errors"]]


async def join(api: ApiClient, token: str, event_id: str, status: str | None = None) -> dict:
    """The buyer's entry after joinQueue (asserted to have `status`, if given)."""
    entry = (await api.ok("JoinQueue", {"eventId": event_id}, token))["entry"]
    if status is not None:
        assert entry["status"] == status, entry
    return entry


async def checkout(api: ApiClient, token: str, event_id: str) -> dict:
    """Join the queue (a slot must be free) and start checkout; the ACTIVE session."""
    entry = (await api.ok("JoinQueue", {"eventId": event_id}, token))["entry"]
    assert entry["status"] == "ADMITTED", entry
    return (await api.ok("StartCheckout", {"eventId": event_id}, token))["session"]


def buy_input(event_id: str, items: list[tuple[str, int]], key: str = "key-1") -> dict:
    """PurchaseTickets' variables for (ticket type id, quantity) items."""
    return {"input": {"eventId": event_id, "idempotencyKey": key,
                      "items": [{"ticketTypeId": t, "quantity": q} for t, q in items]}}


async def buy(api: ApiClient, token: str, event_id: str, items: list[tuple[str, int]], key: str = "key-1") -> dict:
    """A purchase that must succeed; its order."""
    return (await api.ok("PurchaseTickets", buy_input(event_id, items, key), token))["order"]
