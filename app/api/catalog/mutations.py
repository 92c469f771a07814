"""M1, M2, the venue mutations and the gate staff's: thin calls into the catalog services."""

from __future__ import annotations

import strawberry

from app.api.catalog.gate import GateMutation
from app.api.catalog.inputs import (
    CreateEventInput,
    CreateTicketsInput,
    CreateVenueInput,
    UpdateEventInput,
    UpdateVenueInput,
)
from app.api.catalog.types import CreateTicketsPayload, Event, EventPayload, EventTicket, Venue, VenuePayload
from app.api.context import Info
from app.api.errors import answer
from app.catalog import service as catalog


@strawberry.type
class CatalogMutation(GateMutation):
    @strawberry.mutation(description="Organizer.")
    async def create_venue(self, info: Info, input: CreateVenueInput) -> VenuePayload:
        ctx = info.context
        return await answer(VenuePayload, lambda: catalog.create_venue(ctx.runtime, actor=ctx.viewer, draft=input.to_draft()),
                            lambda venue: VenuePayload(venue=Venue.from_model(venue)))

    @strawberry.mutation(description="Organizer who created the venue: edits it; existing events keep their snapshot.")
    async def update_venue(self, info: Info, id: strawberry.ID, input: UpdateVenueInput) -> VenuePayload:
        ctx = info.context
        return await answer(
            VenuePayload, lambda: catalog.update_venue(ctx.runtime, actor=ctx.viewer, venue_id=str(id), draft=input.to_draft()),
            lambda venue: VenuePayload(venue=Venue.from_model(venue)))

    @strawberry.mutation(
        description="M1, organizer: snapshots the venue; a second event of the same organizer with the same artist, "
        "venue, start and title slug is DUPLICATE_EVENT."
    )
    async def create_event(self, info: Info, input: CreateEventInput) -> EventPayload:
        ctx = info.context
        return await answer(EventPayload, lambda: catalog.create_event(ctx.runtime, actor=ctx.viewer, draft=input.to_draft()),
                            lambda event: EventPayload(event=Event.from_model(event)))

    @strawberry.mutation(description="Organizer who created the event: changes its settings (its cap per buyer).")
    async def update_event(self, info: Info, id: strawberry.ID, input: UpdateEventInput) -> EventPayload:
        ctx = info.context
        return await answer(
            EventPayload, lambda: catalog.update_event(ctx.runtime, actor=ctx.viewer, event_id=str(id), changes=input.to_changes()),
            lambda event: EventPayload(event=Event.from_model(event)))

    @strawberry.mutation(description="M2, organizer: adds ticket types to an event; one per TicketType per event.")
    async def create_tickets(self, info: Info, input: CreateTicketsInput) -> CreateTicketsPayload:
        ctx = info.context

        def created(tickets: list) -> CreateTicketsPayload:
            ctx.ticket_types.clear_all()  # a later field of this request must see the new types
            # The service refuses cancelled events, so these types belong to a live one.
            return CreateTicketsPayload(ticket_types=[EventTicket.from_model(t, event_cancelled=False) for t in tickets])

        return await answer(CreateTicketsPayload, lambda: catalog.create_ticket_types(
            ctx.runtime, actor=ctx.viewer, event_id=str(input.event_id), drafts=[t.to_draft() for t in input.ticket_types],
            max_per_purchase=ctx.settings.max_tickets_per_purchase,
        ), created)
