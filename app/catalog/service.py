"""Catalog use cases: publish venues, events and ticket types; list and search events.

Plain async functions with explicit arguments. They check their input
completely before writing anything, and raise `DomainError` on refusal.
"""

from __future__ import annotations

import base64
import logging
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from app.auth import Viewer, require_role
from app.catalog import repository as repo
from app.catalog import sale_view, search, search_reads, turns
from app.catalog.dedupe import dedupe_key, legacy_key
from app.catalog.inputs import (
    EventChanges,
    EventDraft,
    TicketTypeDraft,
    VenueDraft,
    check_buyer_cap,
    check_pre_queue,
    check_event,
    check_instant,
    check_ticket_type,
    check_venue,
)
from app.catalog.models import (
    DEFAULT_TICKET_NAMES,
    Event,
    EventStatus,
    EventTicket,
    Venue,
    VenueSnapshot,
    derive_status,
)
from app.documents import parse_object_id
from app.errors import Checker, ErrorCode, Problem, fail, not_found
from app.runtime import Runtime, Scheduler
from app.timeutil import now_ms

log = logging.getLogger("app.catalog")

MAX_PAGE = 100
MAX_SEARCH_LIMIT = 100
MAX_SEARCH_LENGTH = 200
# Matches ranked in memory per search; past this, the earliest-starting win.
# Events that started less than this long ago are found with the upcoming ones (a show in progress).
ONGOING_MS = 6 * 3600 * 1000


# --- venues -----------------------------------------------------------------


async def create_venue(rt: Runtime, *, actor: Viewer, draft: VenueDraft) -> Venue:
    """Create a venue owned by the calling organizer."""
    organizer_id = require_role(actor, "organizer")
    check = Checker()
    values = check_venue(check, draft)
    check.raise_if_any()
    now = now_ms()
    venue = Venue(
        _id=str(ObjectId()), organizerId=organizer_id, createdAtUtc=now, updatedAtUtc=now, **values
    )
    await repo.insert_venue(rt.db, venue)
    return venue


async def update_venue(rt: Runtime, *, actor: Viewer, venue_id: str, draft: VenueDraft) -> Venue:
    """Change the given fields of a venue; events keep the snapshot they took."""
    require_role(actor, "organizer")
    venue = await get_venue(rt, venue_id=venue_id, field="id")
    _require_owner(actor, venue.organizer_id, "venue")
    check = Checker()
    changes = check_venue(check, draft, partial=True)
    check.raise_if_any()
    merged_lat = changes.get("latitude", venue.latitude)
    merged_lng = changes.get("longitude", venue.longitude)
    if (merged_lat is None) != (merged_lng is None):
        raise fail(ErrorCode.VALIDATION, "latitude and longitude go together", "input.latitude")
    changes["updatedAtUtc"] = now_ms()
    updated = await repo.update_venue(rt.db, ObjectId(venue.id), changes)
    if updated is None:
        raise not_found("venue", "id")
    return updated


async def get_venue(rt: Runtime, *, venue_id: str, field: str | None = None) -> Venue:
    """The venue, or NOT_FOUND (also for a malformed id)."""
    venue = await repo.get_venue(rt.db, parse_object_id(venue_id, "venue", field))
    if venue is None:
        raise not_found("venue", field)
    return venue


async def find_venue(rt: Runtime, *, venue_id: str) -> Venue | None:
    """The venue, or None when unknown or malformed."""
    if not ObjectId.is_valid(venue_id):
        return None
    return await repo.get_venue(rt.db, ObjectId(venue_id))


async def list_venues(rt: Runtime, *, city: str | None, first: int) -> list[Venue]:
    _check_page_size(first, "first")
    return await repo.list_venues(rt.db, city, first)


# --- events -----------------------------------------------------------------


async def create_event(rt: Runtime, *, actor: Viewer, draft: EventDraft) -> Event:
    """Create an event at a venue, snapshotting the venue as it is now."""
    organizer_id = require_role(actor, "organizer")
    check = Checker()
    values = check_event(check, draft, now_ms())
    check.raise_if_any()
    venue = await get_venue(rt, venue_id=draft.venue_id, field="input.venueId")
    snapshot = VenueSnapshot(
        venueId=venue.id, name=venue.name, address=venue.address, city=venue.city, country=venue.country,
        timezone=venue.timezone,
    )
    event = Event(
        _id=str(ObjectId()),
        title=values["title"],
        description=values["description"],
        artistId=values["artist_id"],
        artistName=values["artist_name"],
        venue=snapshot,
        startAtUtc=values["start"],
        endAtUtc=values["end"],
        status=EventStatus.UPCOMING,
        searchRanks=search.ranked_tokens(
            {"title": values["title"], "artist": values["artist_name"], "venue": venue.name, "city": venue.city}),
        dedupeKey=dedupe_key(
            organizer_id=organizer_id, artist_id=values["artist_id"], venue_id=venue.id, start=values["start"],
            title=values["title"]),
        organizerId=organizer_id,
        createdAtUtc=now_ms(),
        maxTicketsPerBuyer=draft.max_tickets_per_buyer,
        claimableStock=0,
    )
    duplicate = fail(
        ErrorCode.DUPLICATE_EVENT, "you already have an event of this artist with this title at this venue and time")
    legacy = legacy_key(artist_id=values["artist_id"], venue_id=venue.id, start=values["start"], title=values["title"])
    if await repo.organizer_holding_key(rt.db, legacy) == organizer_id:  # stored before keys named the organizer
        raise duplicate
    try:
        await repo.insert_event(rt.db, event)
    except DuplicateKeyError:
        raise duplicate from None
    return event


async def update_event(rt: Runtime, *, actor: Viewer, event_id: str, changes: EventChanges) -> Event:
    """Change the given settings of the caller's event: its cap of tickets per buyer, and how
    many minutes before the sale its queue opens (the pre-queue)."""
    require_role(actor, "organizer")
    event = await get_event(rt, event_id=event_id, field="id")
    _require_owner(actor, event.organizer_id, "event")
    if event.status is EventStatus.CANCELLED:
        raise fail(ErrorCode.EVENT_CANCELLED, "the event is cancelled")
    check = Checker()
    check_buyer_cap(check, changes.max_tickets_per_buyer, "input.maxTicketsPerBuyer")
    check_pre_queue(check, changes.queue_opens_minutes_before, "input.queueOpensMinutesBefore")
    check.raise_if_any()
    stored = {"max_tickets_per_buyer": "maxTicketsPerBuyer", "queue_opens_minutes_before": "queueOpensMinutesBefore"}
    fields = {stored[name]: getattr(changes, name) for name in changes.given if name in stored}
    if fields:
        await repo.set_event_fields(rt.db, ObjectId(event.id), fields)
        sale_view.forget(event.id)  # other processes' views follow within a second
    return await get_event(rt, event_id=event.id)


async def get_event(rt: Runtime, *, event_id: str, field: str | None = None) -> Event:
    """The event, or NOT_FOUND (also for a malformed id)."""
    event = await repo.get_event(rt.db, parse_object_id(event_id, "event", field))
    if event is None:
        raise not_found("event", field)
    return event


async def find_event(rt: Runtime, *, event_id: str) -> Event | None:
    """The event, or None when unknown or malformed."""
    if not ObjectId.is_valid(event_id):
        return None
    return await repo.get_event(rt.db, ObjectId(event_id))


async def create_ticket_types(
    rt: Runtime,
    *,
    actor: Viewer,
    event_id: str,
    drafts: list[TicketTypeDraft],
    max_per_purchase: int,
) -> list[EventTicket]:
    """Add ticket types to the caller's event: all of them or none; one per kind.

    With workers (a scheduler), the event's stored status is refreshed when each
    sale window opens and closes.
    """
    require_role(actor, "organizer")
    event = await get_event(rt, event_id=event_id, field="input.eventId")
    _require_owner(actor, event.organizer_id, "event")
    if event.status is EventStatus.CANCELLED:
        raise fail(ErrorCode.EVENT_CANCELLED, "the event is cancelled")
    check = Checker()
    check.require(bool(drafts), "input.ticketTypes", "must list at least one ticket type")
    now = now_ms()
    existing = (await repo.ticket_types_by_event(rt.db, [ObjectId(event.id)]))[event.id]
    taken = {t.type for t in existing}
    tickets: list[EventTicket] = []
    for i, draft in enumerate(drafts):
        at = f"input.ticketTypes.{i}"
        values = check_ticket_type(
            check, draft, at, event_start=event.start_at_utc, event_end=event.end_at_utc, now=now,
            max_per_purchase=max_per_purchase,
        )
        if draft.type in taken:
            check.add(_duplicate_type(draft.type, f"{at}.type"))
        taken.add(draft.type)
        if check.problems:
            continue
        tickets.append(
            EventTicket(
                _id=str(ObjectId()), eventId=event.id, type=draft.type,
                name=values["name"] or DEFAULT_TICKET_NAMES[draft.type], priceCents=draft.price_cents,
                currency=values["currency"], quantityTotal=draft.quantity_total, maxPerPurchase=draft.max_per_purchase,
                maxPerBuyer=draft.max_per_buyer,
                saleStartsAtUtc=values["start"], saleEndsAtUtc=values["end"], createdAtUtc=now,
            )
        )
    check.raise_if_any()
    try:
        await repo.insert_ticket_types(rt.db, tickets)
    except DuplicateKeyError:
        # Another request added one of these kinds between our check and our write.
        raise fail(ErrorCode.DUPLICATE_TICKET_TYPE, "the event already has one of these ticket types") from None
    await turns.add_claimable(rt.db, event.id, sum(t.quantity_total for t in tickets))
    instants = sorted({t.sale_starts_at_utc for t in tickets} | {t.sale_ends_at_utc for t in tickets})
    await repo.record_sale_windows(rt.db, ObjectId(event.id), [i for i in instants if i > now])
    await refresh_event_status(rt, event=event)
    await _schedule_status_refreshes(rt.scheduler, event.id, tickets, now)
    return tickets


async def _schedule_status_refreshes(scheduler: Scheduler, event_id: str, tickets: list[EventTicket], now: int) -> None:
    instants = sorted({t.sale_starts_at_utc for t in tickets} | {t.sale_ends_at_utc for t in tickets})
    try:
        for instant in (i for i in instants if i > now):
            await scheduler.refresh_status_at(event_id=event_id, at_ms=instant)
    except Exception:  # noqa: BLE001 - the status is derived on read, and a cron job refreshes it
        log.warning("could not schedule the status refreshes of event %s", event_id, exc_info=True)


def _duplicate_type(kind: Any, field: str) -> Problem:
    return Problem(ErrorCode.DUPLICATE_TICKET_TYPE, f"the event already has a {kind.value} ticket type", field)


async def refresh_event_status(rt: Runtime, *, event: Event) -> EventStatus:
    """Recompute an event's stored sale status from its ticket types, and save it if changed."""
    tickets = (await repo.ticket_types_by_event(rt.db, [ObjectId(event.id)]))[event.id]
    status = derive_status(event.status, tickets, now_ms())
    if status is not event.status:
        await repo.set_event_status(rt.db, ObjectId(event.id), status)
    sale_view.forget(event.id)  # called when stock or time changed the sale: this process reads it fresh
    return status


async def ticket_types_for_events(db: AsyncDatabase, event_ids: list[str]) -> list[list[EventTicket]]:
    """The ticket types of each event, in the order asked, in one round trip (DataLoader batch)."""
    grouped = await repo.ticket_types_by_event(db, [ObjectId(e) for e in event_ids])
    return [grouped.get(e, []) for e in event_ids]


# --- listing and search -----------------------------------------------------


@dataclass
class EventFilterArgs:
    status: EventStatus | None = None
    city: str | None = None
    artist_id: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None


@dataclass
class EventPage:
    events: list[Event]
    has_next_page: bool


def encode_cursor(event: Event) -> str:
    """An opaque, stable cursor: the event's place in (startAtUtc, id) order."""
    return base64.urlsafe_b64encode(f"{event.start_at_utc}:{event.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> tuple[int, ObjectId]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start_text, _, oid = raw.partition(":")
        start = int(start_text)
        if not -(2**63) <= start < 2**63:  # what a stored startAtUtc can be
            raise ValueError(start)
        return start, ObjectId(oid)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, InvalidId):
        raise fail(ErrorCode.VALIDATION, "is not a cursor this API issued", field) from None


def _event_filters(check: Checker, args: EventFilterArgs | None, prefix: str = "filter") -> dict[str, Any]:
    if args is None:
        return {}
    query: dict[str, Any] = {}
    if args.status is not None:
        query["status"] = args.status.value
    if args.city:
        query["venue.city"] = args.city.strip()
    if args.artist_id:
        query["artistId"] = args.artist_id
    after = check_instant(check, args.starts_after, f"{prefix}.startsAfter")
    before = check_instant(check, args.starts_before, f"{prefix}.startsBefore")
    if after is not None or before is not None:
        # Half-open: startsAfter <= startsAt < startsBefore.
        query["startAtUtc"] = {k: v for k, v in (("$gte", after), ("$lt", before)) if v is not None}
    return query


def _check_page_size(first: int, field: str, maximum: int = MAX_PAGE) -> None:
    if not 0 <= first <= maximum:
        raise fail(ErrorCode.VALIDATION, f"must be between 0 and {maximum}", field)


async def list_events(rt: Runtime, *, filters: EventFilterArgs | None, first: int, after: str | None) -> EventPage:
    """Q1: a page of events by start time (then id), after an opaque cursor."""
    _check_page_size(first, "first")
    check = Checker()
    query = _event_filters(check, filters)
    check.raise_if_any()
    key = decode_cursor(after) if after else None
    if first == 0:
        return EventPage([], has_next_page=bool(await repo.page_events(rt.db, filters=query, after=key, limit=1)))
    events = await repo.page_events(rt.db, filters=query, after=key, limit=first + 1)
    return EventPage(events[:first], has_next_page=len(events) > first)


async def search_events(
    rt: Runtime, *, query: str, status: EventStatus | None, city: str | None, limit: int,
    include_past: bool = False,
) -> list[Event]:
    """Q5: events holding every query term, best match first, then earliest start; upcoming
    events only, unless `include_past` (then past ones follow, latest first)."""
    text = query.strip()
    if not text or len(text) > MAX_SEARCH_LENGTH:
        raise fail(ErrorCode.VALIDATION, f"must be 1 to {MAX_SEARCH_LENGTH} characters", "query")
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise fail(ErrorCode.VALIDATION, f"must be between 1 and {MAX_SEARCH_LIMIT}", "limit")
    terms = search.query_terms(text)
    if not terms:
        raise fail(ErrorCode.VALIDATION, "must contain a letter or a digit", "query")
    bound, where = now_ms() - ONGOING_MS, city.strip() if city else None
    terms, opening = await search_reads.leading_first(rt.db, terms, where, bound)
    wanted = search_reads.Wanted(terms, where, status, search_reads.Budget(search_reads.READ_BUDGET))
    found = await search_reads.best(rt.db, wanted, bound, limit, latest_first=False, opening=opening)
    if include_past and len(found) < limit:
        found += await search_reads.best(rt.db, wanted, bound, limit - len(found), latest_first=True)
    return found


def _require_owner(actor: Viewer, owner_id: str, what: str) -> None:
    if actor.user_id != owner_id and "admin" not in actor.roles:
        raise fail(ErrorCode.FORBIDDEN, f"only the organizer who created this {what} may change it")



# --- counters the sale-day services drive (the event and its ticket types are ours) ---


async def reserve_inventory(
    rt: Runtime, *, ticket_type_id: str, quantity: int, total: int | None = None
) -> bool | None:
    """Sell `quantity` of a ticket type if that many remain (guarded: never oversells);
    whether that took the last ones, or None if refused. `total`: its quantityTotal, if known."""
    return (await repo.reserve_inventory(rt.db, ObjectId(ticket_type_id), quantity, total)).took_last


class StockTake(NamedTuple):
    """One purchase's take of a ticket type's stock: how many, of a type of `total`; `tentative`
    while its order has other types still to take (the stock may come back)."""

    db: AsyncDatabase
    quantity: int
    total: int
    parts: tuple[str, ...] = ()  # the counters of quantitySold it also counts in (TENTATIVE, HELD, OFFERED)


async def reserve_together(ticket_type_id: str, takes: list[StockTake]) -> list[bool | None]:
    """Takes of one ticket type that arrived together (app/batches.py), first come first
    served; for each, as `reserve_inventory`: whether it took the last ones, or None if refused.

    One guarded write of their sum if it fits. If not, the count read after that refusal
    says which of them fit, in arrival order (a take too big for what is left is refused,
    a smaller one behind it may still fit), and one more write takes those. So a crowd
    meeting a sell-out costs a few commands per group, not three per buyer, one after
    the other, while buyers holding other types wait on the answer.
    """
    db, total, oid = takes[0].db, takes[0].total, ObjectId(ticket_type_id)
    results: list[bool | None] = [None] * len(takes)
    trying = list(range(len(takes)))
    for _ in range(4):  # the count moves under us only if other processes sell the same type
        if not trying:
            return results
        amount = sum(takes[i].quantity for i in trying)
        parts = {part: sum(takes[i].quantity for i in trying if part in takes[i].parts)
                 for part in {p for i in trying for p in takes[i].parts}}
        taken = await repo.reserve_inventory(db, oid, amount, total, parts)
        if taken.took_last is not None:
            for i in trying:
                results[i] = False
            results[trying[-1]] = taken.took_last
            return results
        if taken.sold is None:  # the type is gone
            return results
        room, fitting = total - taken.sold, []
        for i in trying:
            if takes[i].quantity <= room:
                fitting.append(i)
                room -= takes[i].quantity
        trying = fitting
    # Still racing: each on its own.
    for i in trying:
        take = takes[i]
        results[i] = (await repo.reserve_inventory(db, oid, take.quantity, total,
                                                   dict.fromkeys(take.parts, take.quantity))).took_last
    return results


async def release_inventory(rt: Runtime, *, ticket_type_id: str, quantity: int, parts: tuple[str, ...] = ()) -> None:
    """Give stock back to a ticket type, also off the counters of quantitySold it was counted in."""
    await repo.release_inventory(rt.db, ObjectId(ticket_type_id), quantity, parts)


async def sell_held(rt: Runtime, *, ticket_type_id: str, quantity: int, total: int, offered: int = 0) -> bool:
    """Checkouts bought the stock they held (of a type of `total`; `offered` of it offered to the
    waitlist); whether the type may have sold out with it."""
    return await repo.sell_held(rt.db, ObjectId(ticket_type_id), quantity, total, offered)


async def confirm_tentative(rt: Runtime, *, ticket_type_id: str, quantity: int) -> None:
    """Stock held tentatively is sold for good: its order took every type it asked for."""
    await repo.confirm_tentative(rt.db, ObjectId(ticket_type_id), quantity)


async def ticket_types_by_id(rt: Runtime, *, ids: list[str]) -> dict[str, EventTicket]:
    return await repo.get_ticket_types(rt.db, [ObjectId(i) for i in ids])


def forget_sale_view(event_id: str) -> None:
    """The next sale-path read of this event goes to the documents (a write said the view is stale)."""
    sale_view.forget(event_id)


async def sale_view_of(rt: Runtime, *, event_id: str, field: str | None = None) -> tuple[Event, list[EventTicket]]:
    """The event and its ticket types as the sale path reads them: up to a second old (see sale_view)."""
    return await sale_view.sale_view(rt.db, event_id=event_id, field=field)


async def ticket_types_of_event(rt: Runtime, *, event_id: str) -> list[EventTicket]:
    return (await repo.ticket_types_by_event(rt.db, [ObjectId(event_id)]))[event_id]


def current_status(event: Event, tickets: list[EventTicket]) -> EventStatus:
    """The event's sale status right now (what the API shows)."""
    return derive_status(event.status, tickets, now_ms())


async def mark_cancelled(rt: Runtime, *, actor: Viewer, event_id: str) -> Event:
    """Organizer who owns it (or admin): the event becomes CANCELLED and holds no slots."""
    require_role(actor, "organizer")
    event = await get_event(rt, event_id=event_id, field="eventId")
    _require_owner(actor, event.organizer_id, "event")
    if not await repo.mark_cancelled(rt.db, ObjectId(event.id)):
        raise fail(ErrorCode.EVENT_CANCELLED, "the event is already cancelled")
    sale_view.forget(event.id)
    return await get_event(rt, event_id=event.id)


async def set_sold_counts(rt: Runtime, *, counts: dict[str, int], ticket_type_ids: list[str]) -> None:
    """After a cancellation: each type's quantitySold becomes its count of non-cancelled tickets."""
    for ticket_type_id in ticket_type_ids:
        await repo.set_quantity_sold(rt.db, ObjectId(ticket_type_id), counts.get(ticket_type_id, 0))


async def events_with_window_edges(rt: Runtime, *, since: int, until: int) -> list[str]:
    """Events one of whose sale windows opened or closed in (since, until]: whose stored status
    may be due for a change. Independent of how many events there ever were."""
    return await repo.events_with_window_edges(rt.db, since, until)


async def events_with_queue_activity(rt: Runtime, *, since: int) -> list[str]:
    """Events whose queue counters moved after `since` (joins, checkouts, purchases, expiries)."""
    return sorted(await turns.recently_moved(rt.db, since))


async def event_ids(rt: Runtime, *, statuses: list[EventStatus]) -> list[str]:
    """Ids of the events in the given stored statuses (for the repair's sweep)."""
    return await repo.event_ids(rt.db, statuses)


async def mark_queue_drawn(rt: Runtime, *, event_id: str, at: int) -> None:
    """The event's pre-queue was drawn (app/queue/prequeue.py): from now on its queue is an ordinary one."""
    await repo.set_event_fields(rt.db, ObjectId(event_id), {"queueDrawnAtUtc": at})
    sale_view.forget(event_id)


async def correct_quantity_sold(rt: Runtime, *, ticket_type_id: str, seen: int, value: int) -> bool:
    """Repair: quantitySold becomes the recount `value` if it still holds `seen`; False if a write raced us."""
    return await repo.set_counter_if_unchanged(rt.db, "eventTickets", ObjectId(ticket_type_id), "quantitySold", seen, value)


async def correct_part_of_sold(rt: Runtime, *, ticket_type_id: str, part: str, seen: int, value: int) -> bool:
    """Repair: a counter of quantitySold's parts (quantityHeld, quantityOffered) becomes `value`
    if it still holds `seen`."""
    return await repo.set_counter_if_unchanged(rt.db, "eventTickets", ObjectId(ticket_type_id), part, seen, value)


async def correct_claimable_stock(rt: Runtime, *, event_id: str, seen: int | None, value: int) -> bool:
    """Repair: the event's claimableStock becomes `value` if it still holds `seen`."""
    return await repo.set_counter_if_unchanged(rt.db, "events", ObjectId(event_id), "claimableStock", seen, value)


async def correct_quantity_tentative(rt: Runtime, *, ticket_type_id: str, seen: int, value: int) -> bool:
    """Repair: quantityTentative becomes `value` if it still holds `seen` (a tentative hold whose
    process died holds nothing); False if a write raced us."""
    return await repo.set_counter_if_unchanged(rt.db, "eventTickets", ObjectId(ticket_type_id), "quantityTentative", seen, value)


async def correct_active_checkouts(rt: Runtime, *, event_id: str, seen: int, value: int) -> bool:
    """Repair: activeCheckouts becomes the recount `value` if it still holds `seen`; False if a write raced us."""
    return await repo.set_counter_if_unchanged(rt.db, "events", ObjectId(event_id), "activeCheckouts", seen, value)


async def events_by_ids(db: AsyncDatabase, event_ids: list[str]) -> list[Event | None]:
    """Events in the order asked, None for unknown ones, in one round trip (DataLoader batch)."""
    found = await repo.get_events(db, [ObjectId(e) for e in event_ids if ObjectId.is_valid(e)])
    return [found.get(e) for e in event_ids]


async def refresh_event_status_by_id(rt: Runtime, *, event_id: str) -> EventStatus:
    """Recompute and store the event's sale status (a job, or after stock changes)."""
    return await refresh_event_status(rt, event=await get_event(rt, event_id=event_id))
