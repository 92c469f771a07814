"""Catalog documents: venues, events (with their venue snapshot) and ticket types."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from app.documents import Document


class EventStatus(Enum):
    UPCOMING = "UPCOMING"
    ON_SALE = "ON_SALE"
    SOLD_OUT = "SOLD_OUT"
    CANCELLED = "CANCELLED"


class TicketType(Enum):
    GENERAL = "GENERAL"
    VIP = "VIP"
    EARLY_BIRD = "EARLY_BIRD"


DEFAULT_TICKET_NAMES = {
    TicketType.GENERAL: "General admission",
    TicketType.VIP: "VIP",
    TicketType.EARLY_BIRD: "Early bird",
}


class Venue(Document):
    name: str
    address: str | None = None
    city: str
    country: str
    timezone: str
    latitude: float | None = None
    longitude: float | None = None
    capacity: int | None = None
    organizer_id: str = Field(alias="organizerId")
    created_at_utc: int = Field(alias="createdAtUtc")
    updated_at_utc: int = Field(alias="updatedAtUtc")


class VenueSnapshot(BaseModel):
    """The venue as it was when the event was created; never follows venue edits."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    venue_id: str = Field(alias="venueId")
    name: str
    address: str | None = None
    city: str
    country: str
    timezone: str


class Event(Document):
    object_id_fields = frozenset({"venue.venueId"})

    title: str
    description: str | None = None
    artist_id: str = Field(alias="artistId")
    artist_name: str = Field(alias="artistName")
    venue: VenueSnapshot
    start_at_utc: int = Field(alias="startAtUtc")
    end_at_utc: int | None = Field(None, alias="endAtUtc")
    status: EventStatus
    next_queue_seq: int = Field(0, alias="nextQueueSeq")
    active_checkouts: int = Field(0, alias="activeCheckouts")
    # The queue's turns (see app/catalog/turns.py): seqs up to here had their turn or left before it,
    admitted_through: int = Field(0, alias="admittedThrough")
    # and these, above it, left before their turn.
    skipped_seqs: list[int] = Field(default_factory=list, alias="skippedSeqs")
    # The last seq handed out when the queue last closed (WAITING up to it: joined as it closed).
    closed_through: int = Field(0, alias="closedThrough")
    # Stock an admission may still claim: the unsold, unheld tickets less one for each buyer whose
    # turn came and who holds nothing yet (app/catalog/turns.py). None: no limit (an event from
    # before checkout holds, until the repair counts it).
    claimable_stock: int | None = Field(None, alias="claimableStock")
    # The last write to the queue's counters: the repair leaves a busy queue's counters alone.
    queue_activity_at_utc: int | None = Field(None, alias="queueActivityAtUtc")
    # Each token the event is findable by (catalog/search.py `index_tokens`), prefixed by the score
    # it earns as a query term here. (Events stored before issue 9 also hold them bare, as
    # `searchTokens`, which nothing reads any more.)
    search_ranks: list[str] = Field(default_factory=list, alias="searchRanks")
    dedupe_key: str = Field(alias="dedupeKey")
    organizer_id: str = Field(alias="organizerId")
    created_at_utc: int = Field(alias="createdAtUtc")
    # Tickets one buyer may hold across all orders, as the organizer set it (None: see buyer_cap).
    max_tickets_per_buyer: int | None = Field(None, alias="maxTicketsPerBuyer")
    # The pre-queue (app/queue/prequeue.py): its queue opens this many minutes before the sale,
    # and its order was drawn at this instant (None: no pre-queue, or not drawn yet).
    queue_opens_minutes_before: int | None = Field(None, alias="queueOpensMinutesBefore")
    queue_drawn_at_utc: int | None = Field(None, alias="queueDrawnAtUtc")

    def buyer_cap(self, tickets: list[EventTicket], most_per_purchase: int) -> int:
        """Tickets one buyer may hold for this event across all orders: the organizer's cap,
        else one full order (each type's most per purchase, together at most `most_per_purchase`)."""
        if self.max_tickets_per_buyer is not None:
            return self.max_tickets_per_buyer
        return min(most_per_purchase, sum(t.most_per_order for t in tickets))


class EventGate(BaseModel):
    """Who answers for an event's gate: its organizer, and the staff they assigned (user ids,
    the tokens' `sub`). Stored on the event as `gateStaff`, which event reads leave out."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    organizer_id: str
    staff_ids: list[str]


# Counters of a ticket type that count part of its quantitySold (app/catalog/repository.py).
TENTATIVE, HELD, OFFERED = "quantityTentative", "quantityHeld", "quantityOffered"


class EventTicket(Document):
    object_id_fields = frozenset({"eventId"})

    event_id: str = Field(alias="eventId")
    type: TicketType
    name: str
    price_cents: int = Field(alias="priceCents")
    currency: str
    quantity_total: int = Field(alias="quantityTotal")
    quantity_sold: int = Field(0, alias="quantitySold")
    # Of quantitySold, what orders of several types hold while they take their other types:
    # it comes back if one of those is refused (see app/orders/stock.py).
    quantity_tentative: int = Field(0, alias="quantityTentative")
    # Of quantitySold, what buyers' checkouts hold and have not bought yet: it comes back when a
    # checkout ends unused (app/queue/holds.py).
    quantity_held: int = Field(0, alias="quantityHeld")
    # Of quantityHeld, what waitlist offers hold (app/waitlist): held for buyers already chosen, so
    # it keeps a sold-out event sold out.
    quantity_offered: int = Field(0, alias="quantityOffered")
    max_per_purchase: int = Field(alias="maxPerPurchase")
    # Of this type, what one buyer may hold across all orders (None: only the event's cap).
    max_per_buyer: int | None = Field(None, alias="maxPerBuyer")
    sale_starts_at_utc: int = Field(alias="saleStartsAtUtc")
    sale_ends_at_utc: int = Field(alias="saleEndsAtUtc")
    created_at_utc: int = Field(alias="createdAtUtc")

    @property
    def most_per_order(self) -> int:
        """The most of this type one order may hold."""
        return min(self.max_per_purchase, self.max_per_buyer or self.max_per_purchase)

    @property
    def quantity_remaining(self) -> int:
        return max(0, self.quantity_total - self.quantity_sold)

    def may_free(self, quantity: int) -> bool:
        """Whether `quantity` could still come free: tentatively held stock may come back."""
        return self.quantity_tentative > 0 and self.quantity_remaining + self.quantity_tentative >= quantity

    def on_sale(self, now: int, event_status: EventStatus) -> bool:
        """Inside the sale window, event not cancelled, and stock left or held (held stock comes
        back to the next buyer if its checkout ends unused)."""
        return (
            event_status is not EventStatus.CANCELLED
            and self.sale_starts_at_utc <= now < self.sale_ends_at_utc
            and (self.quantity_remaining > 0 or self.quantity_held > self.quantity_offered)
        )

    @property
    def sold_for_good(self) -> bool:
        """Every ticket sold, or offered to the waitlist; none of it only held in a checkout."""
        return self.quantity_remaining == 0 and self.quantity_held <= self.quantity_offered


def derive_status(stored: EventStatus, tickets: list[EventTicket], now: int) -> EventStatus:
    """An event's sale status from its ticket types at `now`.

    CANCELLED sticks. ON_SALE while any type is on sale with stock (or stock
    held in checkouts, which may come back); SOLD_OUT when every type is sold
    for good, or when every sale window has closed (nothing can be bought any
    more); otherwise UPCOMING (no types yet, or the next
    window has not opened).
    """
    if stored is EventStatus.CANCELLED:
        return stored
    if not tickets:
        return EventStatus.UPCOMING
    if any(t.on_sale(now, stored) for t in tickets):
        return EventStatus.ON_SALE
    if all(t.sold_for_good for t in tickets):
        return EventStatus.SOLD_OUT
    if all(t.sale_ends_at_utc <= now for t in tickets if not t.sold_for_good):
        return EventStatus.SOLD_OUT
    return EventStatus.UPCOMING
