"""Q1, Q2, Q5, the venue queries and an event's gate staff."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.catalog.gate import GateQuery
from app.api.catalog.inputs import EventFilter
from app.api.catalog.types import Event, EventConnection, EventEdge, EventStatus, PageInfo, Venue
from app.api.context import Info
from app.catalog import service as catalog


@strawberry.type
class CatalogQuery(GateQuery):
    @strawberry.field(description="Q1: events ordered by startsAt ascending, cursor-paginated (first <= 100).")
    async def events(
        self, info: Info, filter: EventFilter | None = None, first: int | None = 20, after: str | None = None
    ) -> EventConnection:
        page = await catalog.list_events(
            info.context.runtime, filters=filter.to_args() if filter else None, first=20 if first is None else first, after=after
        )
        edges = [EventEdge(cursor=catalog.encode_cursor(e), node=Event.from_model(e)) for e in page.events]
        return EventConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else after),
        )

    @strawberry.field(description="Q2: one event with its ticket types; null when unknown.")
    async def event(self, info: Info, id: strawberry.ID) -> Event | None:
        found = await catalog.find_event(info.context.runtime, event_id=str(id))
        if found is None:
            return None
        # Read with the event: every field of it is then an attribute, with nothing to await.
        return Event.from_model(found, tickets=await catalog.ticket_types_of_event(info.context.runtime, event_id=found.id))

    @strawberry.field(
        description="Q5: full-text search over title, artist, venue and city, best match first (limit <= 100); "
        "upcoming events only unless includePast."
    )
    async def search_events(
        self,
        info: Info,
        query: str,
        status: EventStatus | None = None,  # type: ignore[valid-type]
        city: str | None = None,
        limit: int | None = 20,
        include_past: Annotated[bool | None, strawberry.argument(
            description="Also find events that started more than 6 hours ago, after the upcoming ones, latest first."
        )] = False,
    ) -> list[Event]:
        found = await catalog.search_events(info.context.runtime, query=query, status=status, city=city,
                                            limit=20 if limit is None else limit, include_past=bool(include_past))
        return [Event.from_model(e) for e in found]

    @strawberry.field
    async def venue(self, info: Info, id: strawberry.ID) -> Venue | None:
        found = await catalog.find_venue(info.context.runtime, venue_id=str(id))
        return Venue.from_model(found) if found else None

    @strawberry.field
    async def venues(self, info: Info, city: str | None = None, first: int | None = 50) -> list[Venue]:
        return [Venue.from_model(v) for v in await catalog.list_venues(
            info.context.runtime, city=city, first=50 if first is None else first
        )]
