"""Sale-day queries, mutations and subscriptions: declared now, served by issue #3."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError

from app.api.catalog.types import EventPayload
from app.api.context import Info
from app.api.sale.types import (
    CheckInPayload,
    CheckoutPayload,
    EventInventory,
    PurchasePayload,
    PurchaseTicketsInput,
    QueueEntry,
    QueuePayload,
    UserTicket,
)


def not_yet() -> GraphQLError:
    return GraphQLError(
        "Not available yet: the sale-day API (queue, checkout, purchase) ships in the next release",
        extensions={"code": "NOT_IMPLEMENTED"},
    )


@strawberry.type
class SaleQuery:
    @strawberry.field(description="Q3: the viewer's queue entry for the event; null when the viewer never joined.")
    async def queue_position(self, info: Info, event_id: strawberry.ID) -> QueueEntry | None:
        raise not_yet()

    @strawberry.field(description="Q4: the viewer's tickets, newest first, optionally for one event.")
    async def my_tickets(self, info: Info, event_id: strawberry.ID | None = None) -> list[UserTicket]:
        raise not_yet()


@strawberry.type
class SaleMutation:
    @strawberry.mutation(
        description="M3: idempotent; while the viewer's entry is WAITING or ADMITTED it is returned unchanged. "
        "After COMPLETED or EXPIRED it starts a new place at the back (new seq); after LEFT, only once the "
        "cooldown is over."
    )
    async def join_queue(self, info: Info, event_id: strawberry.ID) -> QueuePayload:
        raise not_yet()

    @strawberry.mutation(description="M4: marks the entry LEFT and starts the rejoin cooldown.")
    async def leave_queue(self, info: Info, event_id: strawberry.ID) -> QueuePayload:
        raise not_yet()

    @strawberry.mutation(description="M5: needs the viewer's ACTIVE checkout session for the event; never oversells.")
    async def purchase_tickets(self, info: Info, input: PurchaseTicketsInput) -> PurchasePayload:
        raise not_yet()

    @strawberry.mutation(
        description="M6: needs the viewer's ADMITTED queue entry; at most CHECKOUT_LIMIT sessions per event hold "
        "a slot at once."
    )
    async def start_checkout(self, info: Info, event_id: strawberry.ID) -> CheckoutPayload:
        raise not_yet()

    @strawberry.mutation(description="Gate staff: VALID -> USED exactly once; a second scan is TICKET_ALREADY_USED.")
    async def check_in_ticket(self, info: Info, confirmation_code: str) -> CheckInPayload:
        raise not_yet()

    @strawberry.mutation(description="Organizer: the event becomes CANCELLED and its queue and sessions close.")
    async def cancel_event(self, info: Info, event_id: strawberry.ID) -> EventPayload:
        raise not_yet()


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The viewer's own entry: its current state first, then every status change, and position "
        "changes at most once a second. Opened before the viewer has joined, it sends its first message when "
        "they join."
    )
    async def queue_updates(self, info: Info, event_id: strawberry.ID) -> AsyncGenerator[QueueEntry, None]:
        raise not_yet()
        yield  # pragma: no cover - makes this an async generator

    @strawberry.subscription(
        description="The event's live inventory: current state first, then after every change (coalesced to at "
        "most 5 a second)."
    )
    async def event_inventory(self, info: Info, event_id: strawberry.ID) -> AsyncGenerator[EventInventory, None]:
        raise not_yet()
        yield  # pragma: no cover
