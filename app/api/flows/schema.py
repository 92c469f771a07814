"""Flows that span domains: the cancellation of an event, and its live inventory."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.api.catalog.types import Event, EventPayload, EventTicket
from app.api.context import Info
from app.api.errors import answer
from app.api.flows.types import EventInventory
from app.catalog import service as catalog
from app.catalog.models import Event as DomainEvent
from app.catalog.models import EventStatus as DomainEventStatus
from app.flows import cancellation
from app.flows import inventory as sale_inventory


@strawberry.type
class FlowsMutation:
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
class FlowsSubscription:
    @strawberry.subscription(
        description="The event's live inventory: current state first, then after every change (coalesced to at "
        "most 5 a second)."
    )
    async def event_inventory(self, info: Info, event_id: strawberry.ID) -> AsyncGenerator[EventInventory, None]:
        rt, feeds = info.context.runtime, info.context.feeds
        event = await catalog.get_event(rt, event_id=str(event_id), field="eventId")
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
