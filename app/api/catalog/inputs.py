"""GraphQL input types of the catalog, and their conversion to service drafts."""

from __future__ import annotations


import strawberry

from app.api.catalog.types import EventStatus, TicketType
from app.api.scalars import DateTime
from app.catalog import inputs as drafts
from app.catalog.service import EventFilterArgs


@strawberry.input
class CreateVenueInput:
    name: str
    address: str | None = None
    city: str
    country: str
    timezone: str
    latitude: float | None = None
    longitude: float | None = None
    capacity: int | None = None

    def to_draft(self) -> drafts.VenueDraft:
        return drafts.VenueDraft(**vars(self))


@strawberry.input(description="Only the fields given change; events keep the venue snapshot they took.")
class UpdateVenueInput:
    name: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    timezone: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    capacity: int | None = None

    def to_draft(self) -> drafts.VenueDraft:
        return drafts.VenueDraft(**vars(self))


BUYER_CAP = (
    "Tickets one buyer may hold for this event across all orders, 1 to 100,000. Unset (null): one full "
    "order, the sum of the ticket types' maxPerPurchase (and maxPerBuyer), at most MAX_TICKETS_PER_PURCHASE."
)


@strawberry.input
class CreateEventInput:
    title: str
    description: str | None = None
    artist_id: strawberry.ID
    artist_name: str
    venue_id: strawberry.ID
    starts_at: DateTime  # type: ignore[valid-type]
    ends_at: DateTime | None = None  # type: ignore[valid-type]
    max_tickets_per_buyer: int | None = strawberry.field(default=None, description=BUYER_CAP)

    def to_draft(self) -> drafts.EventDraft:
        return drafts.EventDraft(
            title=self.title, description=self.description, artist_id=str(self.artist_id),
            artist_name=self.artist_name, venue_id=str(self.venue_id), starts_at=self.starts_at, ends_at=self.ends_at,
            max_tickets_per_buyer=self.max_tickets_per_buyer,
        )


@strawberry.input(description="Only the fields given change; a field given as null goes back to its default.")
class UpdateEventInput:
    max_tickets_per_buyer: int | None = strawberry.field(default=strawberry.UNSET, description=BUYER_CAP)
    queue_opens_minutes_before: int | None = strawberry.field(
        default=strawberry.UNSET, description="Open the event's queue this many minutes (1 to 1,440) before its sale: "
        "buyers who join in that window get no place yet, and at the opening their order is drawn at random, once "
        "(queueDraw). Null: no pre-queue.")

    def to_changes(self) -> drafts.EventChanges:
        given = frozenset(name for name, value in vars(self).items() if value is not strawberry.UNSET)
        return drafts.EventChanges(given=given, **{name: getattr(self, name) for name in given})


@strawberry.input
class TicketTypeInput:
    type: TicketType  # type: ignore[valid-type]
    name: str | None = None
    price_cents: int
    currency: str | None = "USD"
    quantity_total: int
    max_per_purchase: int | None = 10
    sale_starts_at: DateTime  # type: ignore[valid-type]
    sale_ends_at: DateTime  # type: ignore[valid-type]
    max_per_buyer: int | None = strawberry.field(
        default=None, description="Tickets of this type one buyer may hold across all orders, 1 to 100,000; "
        "null: only the event's maxTicketsPerBuyer applies.")

    def to_draft(self) -> drafts.TicketTypeDraft:
        return drafts.TicketTypeDraft(
            type=self.type, name=self.name, price_cents=self.price_cents,
            currency=self.currency if self.currency is not None else "USD",
            quantity_total=self.quantity_total,
            max_per_purchase=self.max_per_purchase if self.max_per_purchase is not None else 10,
            sale_starts_at=self.sale_starts_at, sale_ends_at=self.sale_ends_at, max_per_buyer=self.max_per_buyer,
        )


@strawberry.input
class CreateTicketsInput:
    event_id: strawberry.ID
    ticket_types: list[TicketTypeInput]


@strawberry.input
class EventFilter:
    status: EventStatus | None = None  # type: ignore[valid-type]
    city: str | None = None
    artist_id: strawberry.ID | None = None
    starts_after: DateTime | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Inclusive: startsAt >= startsAfter."
    )
    starts_before: DateTime | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Exclusive: startsAt < startsBefore."
    )

    def to_args(self) -> EventFilterArgs:
        return EventFilterArgs(
            status=self.status, city=self.city, artist_id=str(self.artist_id) if self.artist_id else None,
            starts_after=self.starts_after, starts_before=self.starts_before,
        )


