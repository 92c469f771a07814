"""What organizers send, checked field by field before anything is written.

Each `check_*` function returns clean values (trimmed strings, UTC
milliseconds) or records VALIDATION problems on the `Checker`, naming the
dotted input path at fault (`input.ticketTypes.0.quantityTotal`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.catalog.models import TicketType
from app.errors import Checker
from app.timeutil import to_ms

MAX_NAME = 200
MAX_DESCRIPTION = 5000
MAX_QUANTITY = 1_000_000
# A cap per buyer above this is no cap a sale could meet: a typo, refused rather than stored.
MAX_PER_BUYER = 100_000
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass
class VenueDraft:
    name: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    timezone: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    capacity: int | None = None


@dataclass
class EventDraft:
    title: str
    artist_id: str
    artist_name: str
    venue_id: str
    starts_at: datetime
    description: str | None = None
    ends_at: datetime | None = None
    max_tickets_per_buyer: int | None = None


@dataclass
class EventChanges:
    """An organizer's edit of an event: only the fields in `given` change; a field given as
    None goes back to its default."""

    given: frozenset[str]
    max_tickets_per_buyer: int | None = None
    queue_opens_minutes_before: int | None = None


@dataclass
class TicketTypeDraft:
    type: TicketType
    price_cents: int
    quantity_total: int
    sale_starts_at: datetime
    sale_ends_at: datetime
    name: str | None = None
    currency: str = "USD"
    max_per_purchase: int = 10
    max_per_buyer: int | None = None


def check_text(check: Checker, value: str | None, field: str, *, required: bool, limit: int = MAX_NAME) -> str | None:
    """`value` trimmed; blank or longer than `limit` is a problem (blank and optional is None)."""
    if value is None:
        check.require(not required, field, "is required")
        return None
    text = value.strip()
    if not text:
        check.require(False, field, "must not be empty")
        return None
    check.require(len(text) <= limit, field, f"must be at most {limit} characters")
    return text


def check_instant(check: Checker, value: datetime | None, field: str) -> int | None:
    """`value` in UTC milliseconds; a time without a UTC offset is a problem."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        check.require(False, field, "must carry a UTC offset or 'Z', e.g. 2027-03-01T19:30:00Z")
        return None
    return to_ms(value)


def check_timezone(check: Checker, value: str | None, field: str) -> None:
    """An IANA zone name. The tz database is a folder of files: a folder's name ("America")
    or a name too long for a path reach the file system as OSError, not as a missing zone."""
    if value is None:
        return
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = value if len(value) <= 64 else value[:64] + "..."
        check.require(False, field, f"'{shown}' is not an IANA time zone, e.g. Europe/London")


def check_venue(check: Checker, draft: VenueDraft, *, partial: bool = False) -> dict:
    """The venue fields, cleaned; with `partial`, only those given (for an edit)."""
    required = not partial
    values = {
        "name": check_text(check, draft.name, "input.name", required=required),
        "address": check_text(check, draft.address, "input.address", required=False),
        "city": check_text(check, draft.city, "input.city", required=required),
        "country": check_text(check, draft.country, "input.country", required=required),
        "timezone": check_text(check, draft.timezone, "input.timezone", required=required),
        "latitude": draft.latitude,
        "longitude": draft.longitude,
        "capacity": draft.capacity,
    }
    check_timezone(check, values["timezone"], "input.timezone")
    if draft.latitude is not None:
        check.require(-90 <= draft.latitude <= 90, "input.latitude", "must be between -90 and 90")
    if draft.longitude is not None:
        check.require(-180 <= draft.longitude <= 180, "input.longitude", "must be between -180 and 180")
    if not partial and (draft.latitude is None) != (draft.longitude is None):
        check.require(False, "input.latitude", "latitude and longitude go together")
    if draft.capacity is not None:
        check.require(draft.capacity >= 0, "input.capacity", "must not be negative")
    return values if not partial else {k: v for k, v in values.items() if v is not None}


def check_event(check: Checker, draft: EventDraft, now: int) -> dict:
    """The event fields, cleaned; times in UTC milliseconds."""
    values = {
        "title": check_text(check, draft.title, "input.title", required=True),
        "description": check_text(check, draft.description, "input.description", required=False, limit=MAX_DESCRIPTION)
        if draft.description and draft.description.strip()
        else None,
        "artist_id": check_text(check, draft.artist_id, "input.artistId", required=True),
        "artist_name": check_text(check, draft.artist_name, "input.artistName", required=True),
        "start": check_instant(check, draft.starts_at, "input.startsAt"),
        "end": check_instant(check, draft.ends_at, "input.endsAt"),
    }
    check_buyer_cap(check, draft.max_tickets_per_buyer, "input.maxTicketsPerBuyer")
    if values["start"] is not None:
        check.require(values["start"] > now, "input.startsAt", "must be in the future")
        if values["end"] is not None:
            check.require(values["end"] > values["start"], "input.endsAt", "must be after startsAt")
    return values


# The longest pre-queue an organizer may open: a day before the sale.
MAX_PRE_QUEUE_MINUTES = 1440


def check_pre_queue(check: Checker, value: int | None, field: str) -> None:
    """Minutes the queue opens before the sale: unset (no pre-queue), or 1 to MAX_PRE_QUEUE_MINUTES."""
    if value is not None:
        check.require(1 <= value <= MAX_PRE_QUEUE_MINUTES, field,
                      f"must be between 1 and {MAX_PRE_QUEUE_MINUTES:,} minutes, or null for no pre-queue")


def check_buyer_cap(check: Checker, value: int | None, field: str) -> None:
    """A cap of tickets per buyer: unset (the default applies), or 1 to MAX_PER_BUYER."""
    if value is not None:
        check.require(1 <= value <= MAX_PER_BUYER, field, f"must be between 1 and {MAX_PER_BUYER:,}, or null for the default")


def check_ticket_type(
    check: Checker, draft: TicketTypeDraft, at: str, *, event_start: int, event_end: int | None, now: int, max_per_purchase: int
) -> dict:
    """One ticket type's fields, cleaned; `at` is its input path (input.ticketTypes.N)."""
    values = {
        "name": check_text(check, draft.name, f"{at}.name", required=False),
        "currency": (draft.currency or "").strip().upper(),
        "start": check_instant(check, draft.sale_starts_at, f"{at}.saleStartsAt"),
        "end": check_instant(check, draft.sale_ends_at, f"{at}.saleEndsAt"),
    }
    check.require(draft.price_cents >= 0, f"{at}.priceCents", "must not be negative")
    check.require(bool(_CURRENCY.match(values["currency"])), f"{at}.currency", "must be a three-letter ISO-4217 code, e.g. USD")
    check.require(
        1 <= draft.quantity_total <= MAX_QUANTITY, f"{at}.quantityTotal", f"must be between 1 and {MAX_QUANTITY:,}"
    )
    check.require(
        1 <= draft.max_per_purchase <= max_per_purchase,
        f"{at}.maxPerPurchase",
        f"must be between 1 and {max_per_purchase}",
    )
    check_buyer_cap(check, draft.max_per_buyer, f"{at}.maxPerBuyer")
    start, end = values["start"], values["end"]
    if start is not None and end is not None:
        check.require(start < end, f"{at}.saleStartsAt", "must be before saleEndsAt")
        check.require(end > now, f"{at}.saleEndsAt", "must be in the future")
        last = event_end if event_end is not None else event_start
        check.require(
            end <= last, f"{at}.saleEndsAt", "must not be after the event ends" if event_end else "must not be after the event starts"
        )
    return values
