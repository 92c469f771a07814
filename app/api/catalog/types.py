"""GraphQL types of the catalog, built from the domain models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import strawberry

from app.api.context import Info
from app.api.errors import UserError
from app.api.scalars import DateTime, ms_to_datetime
from app.catalog import models
from app.timeutil import from_ms, now_ms

T = TypeVar("T")

EventStatus = strawberry.enum(models.EventStatus, name="EventStatus")
TicketType = strawberry.enum(models.TicketType, name="TicketType")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Venue:
    id: strawberry.ID
    name: str
    address: str | None
    city: str
    country: str
    timezone: str = strawberry.field(description="IANA time zone, e.g. Europe/London")
    latitude: float | None
    longitude: float | None
    capacity: int | None
    created_at: DateTime  # type: ignore[valid-type]

    @classmethod
    def from_model(cls, v: models.Venue) -> Venue:
        return cls(
            id=strawberry.ID(v.id), name=v.name, address=v.address, city=v.city, country=v.country,
            timezone=v.timezone, latitude=v.latitude, longitude=v.longitude, capacity=v.capacity,
            created_at=from_ms(v.created_at_utc),
        )


@strawberry.type(description="The venue as it was when the event was created; later venue edits do not change it.")
class VenueSnapshot:
    venue_id: strawberry.ID
    name: str
    address: str | None
    city: str
    country: str
    timezone: str

    @classmethod
    def from_model(cls, s: models.VenueSnapshot) -> VenueSnapshot:
        return cls(
            venue_id=strawberry.ID(s.venue_id), name=s.name, address=s.address, city=s.city, country=s.country,
            timezone=s.timezone,
        )


@strawberry.type
class EventTicket:
    id: strawberry.ID
    event_id: strawberry.ID
    type: TicketType  # type: ignore[valid-type]
    name: str
    price_cents: int
    currency: str = strawberry.field(description="ISO-4217 code, e.g. USD")
    quantity_total: int
    quantity_sold: int
    quantity_remaining: int
    quantity_held: int = strawberry.field(
        description="Of quantitySold, what checkouts hold and have not bought yet: it comes back to quantityRemaining "
        "if they end unused.")
    max_per_purchase: int
    max_per_buyer: int | None = strawberry.field(
        description="Tickets of this type one buyer may hold across all orders; null: only the event's cap.")
    sale_starts_at: DateTime  # type: ignore[valid-type]
    sale_ends_at: DateTime  # type: ignore[valid-type]
    on_sale: bool = strawberry.field(
        description="Now inside the sale window, event not cancelled, and quantityRemaining > 0 (or stock held in "
        "checkouts, which may come back)."
    )

    @classmethod
    def from_model(cls, t: models.EventTicket, *, event_cancelled: bool) -> EventTicket:
        status = models.EventStatus.CANCELLED if event_cancelled else models.EventStatus.ON_SALE
        return cls(
            id=strawberry.ID(t.id), event_id=strawberry.ID(t.event_id), type=t.type, name=t.name,
            price_cents=t.price_cents, currency=t.currency, quantity_total=t.quantity_total,
            quantity_sold=t.quantity_sold, quantity_remaining=t.quantity_remaining, quantity_held=t.quantity_held,
            max_per_purchase=t.max_per_purchase, max_per_buyer=t.max_per_buyer, sale_starts_at=from_ms(t.sale_starts_at_utc),
            sale_ends_at=from_ms(t.sale_ends_at_utc), on_sale=t.on_sale(now_ms(), status),
        )


@strawberry.type
class Event:
    # Plain fields, filled once from the model: graphql-core reads them as attributes,
    # where a resolver per field cost Strawberry's whole resolver path on every request
    # (11 of Q2's 15 resolvers; docs/BENCHMARKS.md, reads).
    model: strawberry.Private[models.Event]
    id: strawberry.ID
    title: str
    description: str | None
    artist_id: strawberry.ID
    artist_name: str
    venue: VenueSnapshot
    starts_at: DateTime  # type: ignore[valid-type]
    ends_at: DateTime | None  # type: ignore[valid-type]
    timezone: str = strawberry.field(description="The venue's IANA time zone, snapshotted.")
    starts_at_local: str = strawberry.field(
        description="startsAt in the venue's zone with its offset, e.g. 2027-03-01T20:30:00+01:00")
    created_at: DateTime  # type: ignore[valid-type]
    queue_opens_minutes_before: int | None = strawberry.field(
        description="The pre-queue: the queue opens this many minutes before the sale, and the order of those who "
        "joined by the opening is drawn at random. Null: no pre-queue.")
    # The ticket types, when the query that found the event read them with it (Q2); else
    # each field below loads them through the request's DataLoader (lists of events).
    tickets: strawberry.Private[list[models.EventTicket] | None] = None

    @classmethod
    def from_model(cls, e: models.Event, tickets: list[models.EventTicket] | None = None) -> Event:
        local: datetime = from_ms(e.start_at_utc).astimezone(ZoneInfo(e.venue.timezone))
        return cls(
            model=e, id=strawberry.ID(e.id), title=e.title, description=e.description,
            artist_id=strawberry.ID(e.artist_id), artist_name=e.artist_name, venue=VenueSnapshot.from_model(e.venue),
            starts_at=from_ms(e.start_at_utc), ends_at=ms_to_datetime(e.end_at_utc), timezone=e.venue.timezone,
            starts_at_local=local.isoformat(timespec="seconds"), created_at=from_ms(e.created_at_utc), tickets=tickets,
            queue_opens_minutes_before=e.queue_opens_minutes_before,
        )

    @strawberry.field
    def status(self, info: Info) -> EventStatus:  # type: ignore[valid-type]
        return self._from_tickets(info, lambda tickets: models.derive_status(self.model.status, tickets, now_ms()))

    @strawberry.field
    def ticket_types(self, info: Info) -> list[EventTicket]:
        cancelled = self.model.status is models.EventStatus.CANCELLED
        return self._from_tickets(info, lambda tickets: [EventTicket.from_model(t, event_cancelled=cancelled) for t in tickets])

    @strawberry.field(description="Tickets one buyer may hold for this event across all orders: the "
                      "organizer's cap, else one full order (0 while the event has no ticket types).")
    def max_tickets_per_buyer(self, info: Info) -> int:
        most = info.context.settings.max_tickets_per_purchase
        return self._from_tickets(info, lambda tickets: self.model.buyer_cap(tickets, most))

    @strawberry.field
    def tickets_remaining(self, info: Info) -> int:
        return self._from_tickets(info, lambda tickets: sum(t.quantity_remaining for t in tickets))

    def _from_tickets(self, info: Info, answer: Callable[[list[models.EventTicket]], T]) -> T | Awaitable[T]:
        """`answer` of the event's ticket types: at once if they came with the event (no task,
        no await for graphql-core to gather), else once the request's DataLoader has them."""
        if self.tickets is not None:
            return answer(self.tickets)

        async def later() -> T:
            return answer(await info.context.ticket_types.load(self.model.id))

        return later()


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo


@strawberry.type
class VenuePayload:
    venue: Venue | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EventPayload:
    event: Event | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CreateTicketsPayload:
    ticket_types: list[EventTicket] | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
