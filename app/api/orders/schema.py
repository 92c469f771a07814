"""Purchases and tickets: Q4 and M5."""

from __future__ import annotations

import strawberry

from app.api.context import Info
from app.api.errors import answer
from app.api.orders.types import Order, PurchasePayload, PurchaseTicketsInput, UserTicket
from app.orders import service as orders


@strawberry.type
class OrdersQuery:
    @strawberry.field(description="Q4: the viewer's tickets, newest first, optionally for one event.")
    async def my_tickets(self, info: Info, event_id: strawberry.ID | None = None) -> list[UserTicket]:
        found = await orders.my_tickets(
            info.context.runtime, actor=info.context.viewer, event_id=str(event_id) if event_id else None
        )
        return [UserTicket.from_model(t) for t in found]


@strawberry.type
class OrdersMutation:
    @strawberry.mutation(description="M5: needs the viewer's ACTIVE checkout session for the event; never oversells.")
    async def purchase_tickets(self, info: Info, input: PurchaseTicketsInput) -> PurchasePayload:
        return await answer(PurchasePayload, lambda: orders.purchase_tickets(
            info.context.runtime,
            actor=info.context.viewer,
            event_id=str(input.event_id),
            items=[orders.PurchaseItem(str(i.ticket_type_id), i.quantity) for i in input.items],
            idempotency_key=input.idempotency_key,
        ), lambda purchased: PurchasePayload(order=Order.from_model(purchased.order, purchased.tickets)))
