"""GraphQL types of purchases and tickets (app/orders)."""

from __future__ import annotations

import strawberry

from app.api.catalog.types import Event, TicketType
from app.api.context import Info
from app.api.errors import UserError
from app.api.scalars import DateTime, ms_to_datetime
from app.orders import models as orders_models
from app.orders import service as orders
from app.timeutil import from_ms

# Wrapped from the domain's enum, so the API cannot drift from what is stored.
TicketStatus = strawberry.enum(orders_models.TicketStatus, name="TicketStatus")


async def _ticket_event(root: UserTicket, info: Info) -> Event:
    event = await info.context.events.load(str(root.event_id))
    assert event is not None, "a ticket's event is never deleted"
    return Event.from_model(event)


async def _order_tickets(root: Order, info: Info) -> list[UserTicket]:
    if root.issued is not None:  # issued by this very request: as they are in the database
        return [UserTicket.from_model(t) for t in root.issued]
    found = await orders.tickets_of_order(info.context.runtime, order_id=str(root.id))
    return [UserTicket.from_model(t) for t in found]


@strawberry.type
class UserTicket:
    id: strawberry.ID
    ticket_number: str = strawberry.field(description="Unique, human-readable, printed on the ticket.")
    confirmation_code: str = strawberry.field(
        description="Unguessable code scanned at the gate (at least 64 bits of entropy)."
    )
    status: TicketStatus
    event_id: strawberry.ID
    event: Event = strawberry.field(resolver=_ticket_event)
    ticket_type_id: strawberry.ID
    ticket_type: TicketType  # type: ignore[valid-type]
    order_id: strawberry.ID
    purchased_at: DateTime  # type: ignore[valid-type]
    used_at: DateTime | None  # type: ignore[valid-type]

    @classmethod
    def from_model(cls, t: orders_models.UserTicket) -> UserTicket:
        return cls(
            id=strawberry.ID(t.id), ticket_number=t.ticket_number, confirmation_code=t.confirmation_code,
            status=t.status, event_id=strawberry.ID(t.event_id),
            ticket_type_id=strawberry.ID(t.event_ticket_id), ticket_type=t.type, order_id=strawberry.ID(t.order_id),
            purchased_at=from_ms(t.purchased_at_utc), used_at=ms_to_datetime(t.used_at_utc),
        )


@strawberry.type
class Order:
    id: strawberry.ID
    event_id: strawberry.ID
    user_id: strawberry.ID
    tickets: list[UserTicket] = strawberry.field(resolver=_order_tickets)
    total_cents: int
    currency: str
    created_at: DateTime  # type: ignore[valid-type]
    issued: strawberry.Private[list[orders_models.UserTicket] | None] = None

    @classmethod
    def from_model(cls, o: orders_models.Order, issued: list[orders_models.UserTicket] | None = None) -> Order:
        return cls(
            id=strawberry.ID(o.id), event_id=strawberry.ID(o.event_id), user_id=strawberry.ID(o.user_id),
            total_cents=o.total_cents, currency=o.currency, created_at=from_ms(o.created_at_utc), issued=issued,
        )


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
class PurchasePayload:
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
