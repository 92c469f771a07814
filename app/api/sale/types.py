"""GraphQL types of the sale-day API (queue, checkout, orders, tickets)."""

from __future__ import annotations

from enum import Enum

import strawberry

from app.api.catalog.types import Event, EventStatus, EventTicket, TicketType
from app.api.errors import UserError
from app.api.scalars import DateTime


@strawberry.enum
class TicketStatus(Enum):
    VALID = "VALID"
    USED = "USED"
    CANCELLED = "CANCELLED"


@strawberry.enum
class QueueStatus(Enum):
    WAITING = "WAITING"
    ADMITTED = strawberry.enum_value("ADMITTED", description="Holds a checkout slot: may start (or has started) checkout.")
    COMPLETED = strawberry.enum_value(
        "COMPLETED", description="The buyer's checkout ended in a purchase; the slot went to the next buyer."
    )
    EXPIRED = "EXPIRED"
    LEFT = "LEFT"


@strawberry.enum
class CheckoutStatus(Enum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"


@strawberry.type
class UserTicket:
    id: strawberry.ID
    ticket_number: str = strawberry.field(description="Unique, human-readable, printed on the ticket.")
    confirmation_code: str = strawberry.field(
        description="Unguessable code scanned at the gate (at least 64 bits of entropy)."
    )
    status: TicketStatus
    event_id: strawberry.ID
    event: Event
    ticket_type_id: strawberry.ID
    ticket_type: TicketType  # type: ignore[valid-type]
    order_id: strawberry.ID
    purchased_at: DateTime  # type: ignore[valid-type]
    used_at: DateTime | None  # type: ignore[valid-type]


@strawberry.type
class Order:
    id: strawberry.ID
    event_id: strawberry.ID
    user_id: strawberry.ID
    tickets: list[UserTicket]
    total_cents: int
    currency: str
    created_at: DateTime  # type: ignore[valid-type]


@strawberry.type
class QueueEntry:
    event_id: strawberry.ID
    user_id: strawberry.ID
    seq: int = strawberry.field(description="Allocated from the event's atomic counter: strictly increasing per event.")
    status: QueueStatus
    position: int | None = strawberry.field(description="1-based place among WAITING entries of the event; null unless WAITING.")
    joined_at: DateTime  # type: ignore[valid-type]
    admitted_at: DateTime | None  # type: ignore[valid-type]
    expires_at: DateTime  # type: ignore[valid-type]
    cooldown_until: DateTime | None  # type: ignore[valid-type]


@strawberry.type
class CheckoutSession:
    id: strawberry.ID
    event_id: strawberry.ID
    user_id: strawberry.ID
    status: CheckoutStatus
    created_at: DateTime  # type: ignore[valid-type]
    expires_at: DateTime  # type: ignore[valid-type]


@strawberry.type(description="Live sales state of one event, for dashboards.")
class EventInventory:
    event_id: strawberry.ID
    status: EventStatus  # type: ignore[valid-type]
    tickets_remaining: int
    ticket_types: list[EventTicket]
    waiting_count: int
    active_checkouts: int


@strawberry.input
class PurchaseItemInput:
    ticket_type_id: strawberry.ID
    quantity: int


@strawberry.input
class PurchaseTicketsInput:
    event_id: strawberry.ID
    items: list[PurchaseItemInput] = strawberry.field(description="All-or-nothing: either every item is issued or none is.")
    idempotency_key: str = strawberry.field(
        description="Client-chosen; a retry with the same key returns the same order and issues nothing new."
    )


@strawberry.type
class QueuePayload:
    entry: QueueEntry | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CheckoutPayload:
    session: CheckoutSession | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PurchasePayload:
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CheckInPayload:
    ticket: UserTicket | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
