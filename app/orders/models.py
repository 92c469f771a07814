"""Orders and user tickets.

An order moves PENDING -> COMPLETED, or PENDING -> FAILED:
- PENDING: written before any stock is touched (items, prices, the tickets it
  will issue, the idempotency key and a hash of the request). Its stock is
  then taken with the guarded counter, and its tickets inserted: tickets in
  the database are the mark that the stock was taken.
- COMPLETED: the tickets are issued and the checkout is closed.
- FAILED: stock was short (nothing kept), or the repair undid an interrupted one.
- RESERVED (stock taken, tickets not yet issued) is only found in orders
  written by earlier versions; the repair finishes them.
The tickets are generated into the order while PENDING, so finishing an order
(now or, after a crash, by the repair) inserts the very same tickets: never twice.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from app.catalog.models import TicketType
from app.documents import Document


class OrderState(Enum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


IN_FLIGHT = (OrderState.PENDING, OrderState.RESERVED)


class TicketStatus(Enum):
    VALID = "VALID"
    USED = "USED"
    CANCELLED = "CANCELLED"


class _Embedded(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class OrderItem(_Embedded):
    ticket_type_id: str = Field(alias="ticketTypeId")
    type: TicketType
    quantity: int
    unit_price_cents: int = Field(alias="unitPriceCents")


class PlannedTicket(_Embedded):
    """A ticket the order issues when it completes, decided up front."""

    id: str
    ticket_type_id: str = Field(alias="ticketTypeId")
    type: TicketType
    ticket_number: str = Field(alias="ticketNumber")
    confirmation_code: str = Field(alias="confirmationCode")


class Failure(_Embedded):
    code: str
    message: str
    field: str | None = None


class Order(Document):
    object_id_fields = frozenset({"eventId", "sessionId"})

    event_id: str = Field(alias="eventId")
    user_id: str = Field(alias="userId")
    session_id: str = Field(alias="sessionId")
    idempotency_key: str = Field(alias="idempotencyKey")
    request_hash: str = Field(alias="requestHash")
    items: list[OrderItem]
    tickets: list[PlannedTicket]
    state: OrderState
    total_cents: int = Field(alias="totalCents")
    currency: str
    failure: Failure | None = None
    created_at_utc: int = Field(alias="createdAtUtc")
    updated_at_utc: int = Field(alias="updatedAtUtc")
    # Bought with the stock its checkout held (app/queue/holds.py), not taken at purchase.
    from_hold: bool = Field(False, alias="fromHold")

    @property
    def quantity(self) -> int:
        return sum(i.quantity for i in self.items)


class UserTicket(Document):
    object_id_fields = frozenset({"eventId", "eventTicketId", "orderId"})

    user_id: str = Field(alias="userId")
    event_id: str = Field(alias="eventId")
    event_ticket_id: str = Field(alias="eventTicketId")
    type: TicketType
    order_id: str = Field(alias="orderId")
    ticket_number: str = Field(alias="ticketNumber")
    confirmation_code: str = Field(alias="confirmationCode")
    status: TicketStatus
    purchased_at_utc: int = Field(alias="purchasedAtUtc")
    used_at_utc: int | None = Field(None, alias="usedAtUtc")


class Tally(BaseModel):
    """What one buyer's orders of an event hold or may hold (buyerTallies, `_id` "<eventId>:<userId>"):
    tickets in all and by ticket type id, and the orders counted (each once)."""

    id: str = Field(alias="_id")
    total: int = 0
    types: dict[str, int] = Field(default_factory=dict)
    orders: list[str] = Field(default_factory=list)


class Claim(NamedTuple):
    """One order's share of its buyer's tally: its counts by ticket type id, and the room each
    count must have before it (the cap less the order's count), overall and for capped types."""

    tally_id: str
    event_id: str
    user_id: str
    order_id: str
    counts: dict[str, int]
    room: int
    type_rooms: dict[str, int]
