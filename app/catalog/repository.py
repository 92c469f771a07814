"""The catalog's collections (venues, events, eventTickets): every query it runs."""

from __future__ import annotations

from typing import Any, NamedTuple

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.catalog.models import HELD, OFFERED, Event, EventGate, EventStatus, EventTicket, TicketType, Venue

SEARCH_INDEX = "searchRanks_startAtUtc"
CITY_SEARCH_INDEX = "city_searchRanks_startAtUtc"
DUPLICATE_KEY = 11000


async def insert_venue(db: AsyncDatabase, venue: Venue) -> None:
    await db.venues.insert_one(venue.to_doc())


async def get_venue(db: AsyncDatabase, venue_id: ObjectId) -> Venue | None:
    doc = await db.venues.find_one({"_id": venue_id})
    return Venue.from_doc(doc) if doc else None


async def update_venue(db: AsyncDatabase, venue_id: ObjectId, changes: dict[str, Any]) -> Venue | None:
    # update_one and a read, not find_one_and_update (a scan of the collection on SecantusDB).
    if (await db.venues.update_one({"_id": venue_id}, {"$set": changes})).matched_count == 0:
        return None
    return await get_venue(db, venue_id)


async def list_venues(db: AsyncDatabase, city: str | None, limit: int) -> list[Venue]:
    query = {"city": city} if city else {}
    cursor = db.venues.find(query).sort([("name", ASCENDING), ("_id", ASCENDING)]).limit(limit)
    return [Venue.from_doc(d) async for d in cursor]


async def insert_event(db: AsyncDatabase, event: Event) -> None:
    """Insert; raises DuplicateKeyError when the dedupe key is taken."""
    await db.events.insert_one(event.to_doc())


async def organizer_holding_key(db: AsyncDatabase, key: str) -> str | None:
    """The organizer of the event holding the dedupe key `key`, if one does."""
    doc = await db.events.find_one({"dedupeKey": key}, projection={"organizerId": 1})
    return doc["organizerId"] if doc else None


# What an event read leaves behind: the search's tokens (about a hundred strings an event) and
# the turns' log are read by the search and the turns alone. Q2 read them, decoded them and
# validated them on every request. The gate staff (up to MAX_GATE_STAFF ids) are read by the
# gate alone (`get_gate`), and are not for every reader of a public event to see.
UNSEEN = {"searchTokens": 0, "searchRanks": 0, "turnLog": 0, "gateStaff": 0}


async def get_event(db: AsyncDatabase, event_id: ObjectId) -> Event | None:
    doc = await db.events.find_one({"_id": event_id}, projection=UNSEEN)
    return Event.from_doc(doc) if doc else None


async def set_event_status(db: AsyncDatabase, event_id: ObjectId, status: EventStatus) -> None:
    # CANCELLED is final: a recomputation racing a cancellation must not undo it.
    await db.events.update_one(
        {"_id": event_id, "status": {"$ne": EventStatus.CANCELLED.value}},
        {"$set": {"status": status.value}},
    )


async def page_events(
    db: AsyncDatabase,
    *,
    filters: dict[str, Any],
    after: tuple[int, ObjectId] | None,
    limit: int,
) -> list[Event]:
    """Events matching `filters`, by (startAtUtc, _id), strictly after the `after` key."""
    clauses: list[dict[str, Any]] = [filters] if filters else []
    if after is not None:
        start, last_id = after
        clauses.append({"$or": [{"startAtUtc": {"$gt": start}}, {"startAtUtc": start, "_id": {"$gt": last_id}}]})
    query = {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})
    cursor = db.events.find(query, projection=UNSEEN).sort([("startAtUtc", ASCENDING), ("_id", ASCENDING)]).limit(limit)
    return [Event.from_doc(d) async for d in cursor]


WHOLE_BATCH = 10_000


def ranked_query(rank: str, city: str | None, starts: dict[str, int]) -> dict[str, Any]:
    """The find filter for events holding the ranked token `rank`, in `city` if given, starting
    within `starts`.

    Nothing else goes in: SecantusDB's planner scans the whole collection for `$in` on the
    tokens or a filter on a second array field, and walks a hinted index whole. For this filter it takes the ranked
    index (the city's, with a city) and reads only the entries whose start is in range, so
    a search bounds its cost by the width of the range it asks for.
    """
    query: dict[str, Any] = {"searchRanks": rank, "startAtUtc": starts}
    return {"venue.city": city, **query} if city is not None else query


async def ranked_events(db: AsyncDatabase, query: dict[str, Any], *, latest_first: bool, limit: int) -> list[Event]:
    """At most `limit` (0: all) events matching a `ranked_query`, in start order (latest first if asked)."""
    direction = DESCENDING if latest_first else ASCENDING
    # Whole documents: SecantusDB deep-copies a document to project it, which costs it more
    # than sending the fields a search does not need (a third of its time per document).
    # One batch: the server has read and sorted every match before it answers, and the default
    # first batch of 101 would cost a window of a common word a second round trip.
    cursor = db.events.find(query).sort([("startAtUtc", direction), ("_id", direction)]).limit(limit).batch_size(WHOLE_BATCH)
    return [Event.from_doc(_without_tokens(d)) async for d in cursor]


def _without_tokens(doc: dict[str, Any]) -> dict[str, Any]:
    # The ranked tokens served the find; building them into the model cost more than the find's rest.
    doc.pop("searchRanks", None)
    doc.pop("searchTokens", None)
    return doc


async def explain_find(db: AsyncDatabase, query: dict[str, Any], sort: dict[str, int], limit: int) -> dict[str, Any]:
    """The server's plan and counts for one find (for tests and operators)."""
    return await db.command(
        "explain", {"find": "events", "filter": query, "sort": sort, "limit": limit}, verbosity="executionStats",
    )


async def ticket_types_by_event(db: AsyncDatabase, event_ids: list[ObjectId]) -> dict[str, list[EventTicket]]:
    """Every ticket type of the given events, in one round trip, keyed by event id."""
    grouped: dict[str, list[EventTicket]] = {str(e): [] for e in event_ids}
    # An event has at most one type of each kind: size the batch so that a full
    # page of events never needs a getMore (the server's default first batch is 101).
    cursor = (
        db.eventTickets.find({"eventId": event_ids[0] if len(event_ids) == 1 else {"$in": event_ids}})
        .sort([("saleStartsAtUtc", ASCENDING), ("_id", ASCENDING)])
        .batch_size(max(101, len(event_ids) * len(TicketType)))
    )
    for doc in await cursor.to_list():  # one call, where `async for` awaited the cursor for each document
        ticket = EventTicket.from_doc(doc)
        grouped.setdefault(ticket.event_id, []).append(ticket)
    return grouped


async def record_sale_windows(db: AsyncDatabase, event_id: ObjectId, instants: list[int]) -> None:
    """The instants the event's sale windows open or close (for `events_with_window_edges`)."""
    if instants:
        await db.saleWindows.insert_many([{"eventId": event_id, "at": at} for at in instants], ordered=False)


async def events_with_window_edges(db: AsyncDatabase, since: int, until: int) -> list[str]:
    """The events one of whose sale windows opened or closed in (since, until]."""
    cursor = db.saleWindows.find({"at": {"$gt": since, "$lte": until}}, projection={"eventId": 1, "_id": 0})
    return sorted({str(d["eventId"]) async for d in cursor})


async def insert_ticket_types(db: AsyncDatabase, tickets: list[EventTicket]) -> None:
    """Insert all or none, in one transaction; DuplicateKeyError if a type exists.

    Two requests racing for the same type conflict inside their transactions;
    `with_transaction` retries the loser, whose retry then meets the unique index.
    """
    docs = [t.to_doc() for t in tickets]

    async def insert(session: AsyncClientSession) -> None:
        await db.eventTickets.insert_many(docs, session=session)

    async with db.client.start_session() as session:
        try:
            await session.with_transaction(insert)
        except BulkWriteError as error:
            duplicates = [e for e in error.details.get("writeErrors", []) if e.get("code") == DUPLICATE_KEY]
            if duplicates:
                raise DuplicateKeyError(duplicates[0].get("errmsg", "duplicate key"), DUPLICATE_KEY) from error
            raise


# --- guarded counters (DESIGN section 3): one atomic update each, never read-then-write ---


class Taken(NamedTuple):
    """A guarded take's outcome: whether it took the type's last tickets, or None if it was
    refused; then also quantitySold as read after the refusal (None for an unknown type)."""

    took_last: bool | None
    sold: int | None = None


async def reserve_inventory(
    db: AsyncDatabase, ticket_type_id: ObjectId, quantity: int, total: int | None, parts: dict[str, int] | None = None
) -> Taken:
    """Add `quantity` to quantitySold only if that keeps it within quantityTotal (`total`,
    fixed at creation; read here if not given), and to each counter of `parts` (such as
    quantityTentative, or quantityHeld) its share of it.

    Two guards on plain fields rather than one `$expr` comparing the two: SecantusDB
    answers a top-level `$expr` (or `$and`) with a scan of the whole collection. The
    first takes the stock if some stays after it, the second if this is exactly the
    rest; a release landing between the two is met by looking again.
    """
    if total is None:
        doc = await db.eventTickets.find_one({"_id": ticket_type_id}, projection={"quantityTotal": 1})
        if doc is None:
            return Taken(None)
        total = doc["quantityTotal"]
    take = {"$inc": {"quantitySold": quantity} | {k: v for k, v in (parts or {}).items() if v}}
    sold = None
    for _ in range(3):
        some_left = {"_id": ticket_type_id, "quantityTotal": total, "quantitySold": {"$lt": total - quantity}}
        if (await db.eventTickets.update_one(some_left, take)).modified_count:
            return Taken(False)
        the_rest = {"_id": ticket_type_id, "quantityTotal": total, "quantitySold": total - quantity}
        if (await db.eventTickets.update_one(the_rest, take)).modified_count:
            return Taken(True)
        doc = await db.eventTickets.find_one({"_id": ticket_type_id}, projection={"quantitySold": 1})
        if doc is None:
            return Taken(None)
        sold = doc.get("quantitySold", 0)
        if sold + quantity > total:
            break
    return Taken(None, sold)


async def release_inventory(db: AsyncDatabase, ticket_type_id: ObjectId, quantity: int, parts: tuple[str, ...] = ()) -> None:
    """Give `quantity` back, also off each counter of `parts` it was counted in."""
    give_back = {"quantitySold": -quantity} | {part: -quantity for part in parts}
    await db.eventTickets.update_one({"_id": ticket_type_id, "quantitySold": {"$gte": quantity}}, {"$inc": give_back})


async def sell_held(db: AsyncDatabase, ticket_type_id: ObjectId, quantity: int, total: int, offered: int = 0) -> bool:
    """Held stock is sold for good (its checkouts bought it; `offered` of it was offered to the
    waitlist); whether that was the type's last held stock with none left unsold (of
    `total`): then the event may have sold out.

    One write while some stock is unsold; after that, one more while others still hold
    some, and a third for the last holder.
    """
    sold = {"$inc": {HELD: -quantity} | ({OFFERED: -offered} if offered else {})}
    for guard in ({"quantitySold": {"$lt": total}, "quantityHeld": {"$gte": quantity}},
                  {"quantityHeld": {"$gt": quantity}}):
        if (await db.eventTickets.update_one({"_id": ticket_type_id, **guard}, sold)).modified_count:
            return False
    await db.eventTickets.update_one({"_id": ticket_type_id, "quantityHeld": {"$gte": quantity}}, sold)
    return True


async def confirm_tentative(db: AsyncDatabase, ticket_type_id: ObjectId, quantity: int) -> None:
    """Stock held tentatively is now sold for good (its order took all its types)."""
    await db.eventTickets.update_one(
        {"_id": ticket_type_id, "quantityTentative": {"$gte": quantity}}, {"$inc": {"quantityTentative": -quantity}}
    )


async def get_ticket_types(db: AsyncDatabase, ids: list[ObjectId]) -> dict[str, EventTicket]:
    return {str(d["_id"]): EventTicket.from_doc(d) async for d in db.eventTickets.find({"_id": {"$in": ids}})}


async def set_event_fields(db: AsyncDatabase, event_id: ObjectId, changes: dict[str, Any]) -> None:
    """An organizer's settings of the event; a value None goes back to its default (unset)."""
    kept = {k: v for k, v in changes.items() if v is not None}
    dropped = {k: "" for k, v in changes.items() if v is None}
    await db.events.update_one({"_id": event_id}, ({"$set": kept} if kept else {}) | ({"$unset": dropped} if dropped else {}))


async def mark_cancelled(db: AsyncDatabase, event_id: ObjectId) -> bool:
    """CANCELLED, once; False if it already was."""
    result = await db.events.update_one(
        {"_id": event_id, "status": {"$ne": EventStatus.CANCELLED.value}},
        {"$set": {"status": EventStatus.CANCELLED.value, "activeCheckouts": 0}},
    )
    return result.modified_count == 1


async def set_quantity_sold(db: AsyncDatabase, ticket_type_id: ObjectId, value: int) -> None:
    await db.eventTickets.update_one({"_id": ticket_type_id}, {"$set": {"quantitySold": value}})


async def set_counter_if_unchanged(db: AsyncDatabase, collection: str, doc_id: ObjectId, field: str, seen: int, value: int) -> bool:
    """Repair: set a counter to `value` only if it still holds `seen` (no write raced the recount)."""
    # A counter never written yet (an event from before it existed) reads as 0.
    held = {"$in": [seen, None]} if seen == 0 else seen
    result = await db[collection].update_one({"_id": doc_id, field: held}, {"$set": {field: value}})
    return result.modified_count == 1


async def event_ids(db: AsyncDatabase, statuses: list[EventStatus]) -> list[str]:
    cursor = db.events.find({"status": {"$in": [s.value for s in statuses]}}, projection={"_id": 1})
    return [str(d["_id"]) async for d in cursor]


async def get_events(db: AsyncDatabase, ids: list[ObjectId]) -> dict[str, Event]:
    return {str(d["_id"]): Event.from_doc(d) async for d in db.events.find({"_id": {"$in": ids}}, projection=UNSEEN)}


# --- the gate: staff assigned to check tickets in at an event ---


async def get_gate(db: AsyncDatabase, event_id: ObjectId) -> EventGate | None:
    doc = await db.events.find_one({"_id": event_id}, projection={"organizerId": 1, "gateStaff": 1})
    if doc is None:
        return None
    return EventGate(event_id=str(doc["_id"]), organizer_id=doc["organizerId"], staff_ids=doc.get("gateStaff", []))


async def add_gate_staff(db: AsyncDatabase, event_id: ObjectId, user_id: str, most: int) -> bool:
    """Add `user_id` to the event's gate staff unless `most` are there already (guarded in the
    same write, so racing assignments cannot pass it); False if refused or unknown."""
    full = f"gateStaff.{most - 1}"
    result = await db.events.update_one({"_id": event_id, full: {"$exists": False}}, {"$addToSet": {"gateStaff": user_id}})
    return result.matched_count == 1


async def remove_gate_staff(db: AsyncDatabase, event_id: ObjectId, user_id: str) -> None:
    await db.events.update_one({"_id": event_id}, {"$pull": {"gateStaff": user_id}})
