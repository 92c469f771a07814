"""GraphQL types of the catalog, built from the domain models."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import strawberry

from app.api.context import Info
from app.api.errors import UserError
from app.api.scalars import DateTime, ms_to_datetime
from app.catalog import models
from app.timeutil import from_ms, now_ms

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
    max_per_purchase: int
    sale_starts_at: DateTime  # type: ignore[valid-type]
    sale_ends_at: DateTime  # type: ignore[valid-type]
    on_sale: bool = strawberry.field(
        description="Now inside the sale window, event not cancelled, and quantityRemaining > 0."
    )

    @classmethod
    def from_model(cls, t: models.EventTicket, *, event_cancelled: bool) -> EventTicket:
        status = models.EventStatus.CANCELLED if event_cancelled else models.EventStatus.ON_SALE
        return cls(
            id=strawberry.ID(t.id), event_id=strawberry.ID(t.event_id), type=t.type, name=t.name,
            price_cents=t.price_cents, currency=t.currency, quantity_total=t.quantity_total,
            quantity_sold=t.quantity_sold, quantity_remaining=t.quantity_remaining,
            max_per_purchase=t.max_per_purchase, sale_starts_at=from_ms(t.sale_starts_at_utc),
            sale_ends_at=from_ms(t.sale_ends_at_utc), on_sale=t.on_sale(now_ms(), status),
        )


@strawberry.type
class Event:
    model: strawberry.Private[models.Event]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.model.id)

    @strawberry.field
    def title(self) -> str:
        return self.model.title

    @strawberry.field
    def description(self) -> str | None:
        return self.model.description

    @strawberry.field
    def artist_id(self) -> strawberry.ID:
        return strawberry.ID(self.model.artist_id)

    @strawberry.field
    def artist_name(self) -> str:
        return self.model.artist_name

    @strawberry.field
    def venue(self) -> VenueSnapshot:
        return VenueSnapshot.from_model(self.model.venue)

    @strawberry.field
    def starts_at(self) -> DateTime:  # type: ignore[valid-type]
        return from_ms(self.model.start_at_utc)

    @strawberry.field
    def ends_at(self) -> DateTime | None:  # type: ignore[valid-type]
        return ms_to_datetime(self.model.end_at_utc)

    @strawberry.field(description="The venue's IANA time zone, snapshotted.")
    def timezone(self) -> str:
        return self.model.venue.timezone

    @strawberry.field(description="startsAt in the venue's zone with its offset, e.g. 2027-03-01T20:30:00+01:00")
    def starts_at_local(self) -> str:
        local: datetime = from_ms(self.model.start_at_utc).astimezone(ZoneInfo(self.model.venue.timezone))
        return local.isoformat(timespec="seconds")

    @strawberry.field
    async def status(self, info: Info) -> EventStatus:  # type: ignore[valid-type]
        tickets = await info.context.ticket_types.load(self.model.id)
        return models.derive_status(self.model.status, tickets, now_ms())

    @strawberry.field
    async def ticket_types(self, info: Info) -> list[EventTicket]:
        tickets = await info.context.ticket_types.load(self.model.id)
        cancelled = self.model.status is models.EventStatus.CANCELLED
        return [EventTicket.from_model(t, event_cancelled=cancelled) for t in tickets]

    @strawberry.field
    async def tickets_remaining(self, info: Info) -> int:
        tickets = await info.context.ticket_types.load(self.model.id)
        return sum(t.quantity_remaining for t in tickets)

    @strawberry.field
    def created_at(self) -> DateTime:  # type: ignore[valid-type]
        return from_ms(self.model.created_at_utc)


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
