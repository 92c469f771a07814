"""Sale-day queries (Q3, Q4), mutations (M3-M6, check-in, cancel) and subscriptions."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.api.catalog.types import Event, EventPayload, EventTicket
from app.api.context import Info
from app.api.errors import answer
from app.api.sale.types import (
    CheckInPayload,
    CheckoutPayload,
    CheckoutSession,
    EventInventory,
    Order,
    PurchasePayload,
    PurchaseTicketsInput,
    QueueEntry,
    QueuePayload,
    UserTicket,
)
from app.auth import require_user
from app.catalog import service as catalog
from app.catalog.models import Event as DomainEvent
from app.catalog.models import EventStatus as DomainEventStatus
from app.checkin import service as checkin
from app.orders import service as orders
from app.queue import service as queue
from app.queue import watch
from app.sale import cancellation
from app.sale import inventory as sale_inventory


@strawberry.type
class SaleQuery:
    @strawberry.field(description="Q3: the viewer's queue entry for the event; null when the viewer never joined.")
    async def queue_position(self, info: Info, event_id: strawberry.ID) -> QueueEntry | None:
        rt = info.context.runtime
        user_id = require_user(info.context.viewer)
        entry = await queue.get_entry(rt, event_id=str(event_id), user_id=user_id)
        if entry is None:
            return None
        return QueueEntry.from_model(*await queue.seen(rt, entry))

    @strawberry.field(description="Q4: the viewer's tickets, newest first, optionally for one event.")
    async def my_tickets(self, info: Info, event_id: strawberry.ID | None = None) -> list[UserTicket]:
        found = await orders.my_tickets(
            info.context.runtime, actor=info.context.viewer, event_id=str(event_id) if event_id else None
        )
        return [UserTicket.from_model(t) for t in found]


@strawberry.type
class SaleMutation:
    @strawberry.mutation(
        description="M3: idempotent; while the viewer's entry is WAITING or ADMITTED it is returned unchanged. "
        "After COMPLETED, EXPIRED or CLOSED it starts a new place at the back (new seq); after LEFT, only once the "
        "cooldown is over."
    )
    async def join_queue(self, info: Info, event_id: strawberry.ID) -> QueuePayload:
        return await answer(
            QueuePayload, lambda: queue.join_queue(info.context.runtime, actor=info.context.viewer, event_id=str(event_id)),
            lambda joined: QueuePayload(entry=QueueEntry.from_model(joined.entry, joined.position)))

    @strawberry.mutation(description="M4: marks the entry LEFT and starts the rejoin cooldown.")
    async def leave_queue(self, info: Info, event_id: strawberry.ID) -> QueuePayload:
        return await answer(
            QueuePayload, lambda: queue.leave_queue(info.context.runtime, actor=info.context.viewer, event_id=str(event_id)),
            lambda entry: QueuePayload(entry=QueueEntry.from_model(entry, None)))

    @strawberry.mutation(description="M5: needs the viewer's ACTIVE checkout session for the event; never oversells.")
    async def purchase_tickets(self, info: Info, input: PurchaseTicketsInput) -> PurchasePayload:
        return await answer(PurchasePayload, lambda: orders.purchase_tickets(
            info.context.runtime,
            actor=info.context.viewer,
            event_id=str(input.event_id),
            items=[orders.PurchaseItem(str(i.ticket_type_id), i.quantity) for i in input.items],
            idempotency_key=input.idempotency_key,
        ), lambda purchased: PurchasePayload(order=Order.from_model(purchased.order, purchased.tickets)))

    @strawberry.mutation(
        description="M6: needs the viewer's ADMITTED queue entry; at most CHECKOUT_LIMIT sessions per event hold "
        "a slot at once."
    )
    async def start_checkout(self, info: Info, event_id: strawberry.ID) -> CheckoutPayload:
        return await answer(
            CheckoutPayload, lambda: queue.start_checkout(info.context.runtime, actor=info.context.viewer, event_id=str(event_id)),
            lambda session: CheckoutPayload(session=CheckoutSession.from_model(session)))

    @strawberry.mutation(description="Gate staff: VALID -> USED exactly once; a second scan is TICKET_ALREADY_USED.")
    async def check_in_ticket(self, info: Info, confirmation_code: str) -> CheckInPayload:
        return await answer(
            CheckInPayload,
            lambda: checkin.check_in(info.context.runtime, actor=info.context.viewer, confirmation_code=confirmation_code),
            lambda ticket: CheckInPayload(ticket=UserTicket.from_model(ticket)))

    @strawberry.mutation(description="Organizer: the event becomes CANCELLED and its queue and sessions close.")
    async def cancel_event(self, info: Info, event_id: strawberry.ID) -> EventPayload:
        def cancelled(event: DomainEvent) -> EventPayload:
            info.context.ticket_types.clear_all()
            return EventPayload(event=Event.from_model(event))

        return await answer(
            EventPayload,
            lambda: cancellation.cancel_event(info.context.runtime, actor=info.context.viewer, event_id=str(event_id)),
            cancelled)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The viewer's own entry: its current state first, then every status change, and position "
        "changes at most once a second. Opened before the viewer has joined, it sends its first message when "
        "they join."
    )
    async def queue_updates(self, info: Info, event_id: strawberry.ID) -> AsyncGenerator[QueueEntry, None]:
        ctx = info.context
        return watch.watch_entry(ctx.runtime, feeds=ctx.feeds, actor=ctx.viewer, event_id=str(event_id),
                                 show=QueueEntry.from_model)

    @strawberry.subscription(
        description="The event's live inventory: current state first, then after every change (coalesced to at "
        "most 5 a second)."
    )
    async def event_inventory(self, info: Info, event_id: strawberry.ID) -> AsyncGenerator[EventInventory, None]:
        rt, feeds = info.context.runtime, info.context.feeds
        event = await catalog.get_event(rt.db, event_id=str(event_id), field="eventId")
        async with feeds.inventory(event.id, lambda: sale_inventory.snapshot(rt, event_id=event.id)) as feed:
            version, snap = feed.version, feed.value
            while True:
                cancelled = snap.status is DomainEventStatus.CANCELLED
                yield EventInventory(
                    event_id=strawberry.ID(event.id), status=snap.status, tickets_remaining=snap.tickets_remaining,
                    ticket_types=[EventTicket.from_model(t, event_cancelled=cancelled) for t in snap.ticket_types],
                    waiting_count=snap.waiting_count, active_checkouts=snap.event.active_checkouts,
                )
                version, snap = await feed.wait_newer(version)
