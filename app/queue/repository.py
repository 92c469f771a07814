"""The eventQueue collection: every query the queue runs.

Guarded writes are `update_one`, never `find_one_and_update`: SecantusDB runs
the latter's write as a scan of the whole collection (see
app/catalog/turns.py `_write`). A transition's result is the entry we had
with the changes applied; an entry found by its seq is read back by it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from app.db import insert_each
from app.queue.models import HeldItem, HoldState, QueueEntry, QueueStatus

HISTORY_KEPT = 20
# What a finished entry's place leaves behind, dropped when the entry takes a new place.
_ENDED_FIELDS = ("admittedAtUtc", "cooldownUntilUtc", "sessionId", "checkoutStartedAtUtc", "endedAtUtc", "closedBy",
                 "admittedBy", "endedBy", "heldItems", "holdState", "holdOrderId", "offerOf")
_RECORD_FIELDS = ("seq", "status", "joinedAtUtc", "admittedAtUtc", "endedAtUtc", "expiresAtUtc", "heldItems", "holdState")


async def get(db: AsyncDatabase, event_id: str, user_id: str) -> QueueEntry | None:
    doc = await db.eventQueue.find_one({"eventId": ObjectId(event_id), "userId": user_id})
    return QueueEntry.from_doc(doc) if doc else None


async def get_many(db: AsyncDatabase, event_id: str, user_ids: list[str]) -> dict[str, QueueEntry]:
    """The entries of these buyers for the event, by user id (one `find` on the unique index)."""
    if len(user_ids) == 1:  # the plain lookup SecantusDB serves fastest
        entry = await get(db, event_id, user_ids[0])
        return {entry.user_id: entry} if entry else {}
    cursor = db.eventQueue.find({"eventId": ObjectId(event_id), "userId": {"$in": user_ids}})
    return {d["userId"]: QueueEntry.from_doc(d) async for d in cursor}


async def insert_new(db: AsyncDatabase, docs: list[dict[str, Any]]) -> list[bool]:
    """Insert first entries in one command; for each, whether it was written (False: the
    buyer already has an entry for the event)."""
    return await insert_each(db.eventQueue, docs)


async def restart(db: AsyncDatabase, old: QueueEntry, fresh: dict[str, Any]) -> QueueEntry | None:
    """Turn a finished entry into a new place, keeping the old one in `history`.

    Guarded on the old status and seq: of two racing rejoins, one wins.
    """
    record = {k: v for k, v in old.to_doc().items() if k in _RECORD_FIELDS}
    dropped = [f for f in _ENDED_FIELDS if f not in fresh]
    result = await db.eventQueue.update_one(
        {"_id": ObjectId(old.id), "status": old.status.value, "seq": old.seq},
        {
            "$set": fresh,
            "$unset": {f: "" for f in dropped},
            "$push": {"history": {"$each": [record], "$slice": -HISTORY_KEPT}},
        },
    )
    if result.modified_count == 0:
        return None
    doc = {k: v for k, v in old.to_doc().items() if k not in dropped} | fresh
    doc["history"] = (old.history + [record])[-HISTORY_KEPT:]
    return QueueEntry.from_doc(doc)


async def admit_through(db: AsyncDatabase, event_id: str, seq: int, floor: int, now: int, expires_at: int) -> list[QueueEntry]:
    """The turn came to `seq`: the WAITING entry holding it becomes ADMITTED, and so does any
    WAITING entry with a lower seq above `floor` (their turns came first, while their joins
    were still writing them), in one write, lowest first. The entries this call admitted.

    One write, so no reader ever sees `seq` admitted while a lower seq whose turn came
    still waits (invariant 3, as the entries show it). `floor`: the queue's closedThrough,
    below which a WAITING entry joined as the queue closed and holds no slot.
    """
    mark = ObjectId()  # what this call admitted, told apart from a concurrent admitter's
    admitted = {"status": QueueStatus.ADMITTED.value, "admittedAtUtc": now, "expiresAtUtc": expires_at, "admittedBy": mark}
    span = {"$gt": floor, "$lte": seq}
    event = ObjectId(event_id)
    result = await db.eventQueue.update_many({"eventId": event, "status": QueueStatus.WAITING.value, "seq": span},
                                             {"$set": admitted})
    if result.modified_count == 0:
        return []
    # Read back through the (eventId, status, seq) index. Usually the one admitted holds `seq`.
    query = {"eventId": event, "status": QueueStatus.ADMITTED.value, "seq": seq if result.modified_count == 1 else span}
    ours = [QueueEntry.from_doc(d) async for d in db.eventQueue.find(query) if d.get("admittedBy") == mark]
    if len(ours) < result.modified_count:  # the one admitted held a lower seq (or moved on since): look wider
        query["seq"] = span
        ours = [QueueEntry.from_doc(d) async for d in db.eventQueue.find(query) if d.get("admittedBy") == mark]
    return sorted(ours, key=lambda e: e.seq)


async def waiting_through(db: AsyncDatabase, event_id: str, seq: int, limit: int = 100) -> list[QueueEntry]:
    """WAITING entries of the event with a seq up to `seq`, lowest first."""
    cursor = db.eventQueue.find(
        {"eventId": ObjectId(event_id), "status": QueueStatus.WAITING.value, "seq": {"$lte": seq}}
    ).sort([("seq", ASCENDING)]).limit(limit)
    return [QueueEntry.from_doc(d) async for d in cursor]


async def transition(
    db: AsyncDatabase, entry: QueueEntry, changes: dict[str, Any], extra_filter: dict | None = None
) -> QueueEntry | None:
    """Apply `changes` only if the entry is still in the status we read: exactly one caller
    wins. The entry after the change, or None if it had changed first."""
    result = await db.eventQueue.update_one(
        {"_id": ObjectId(entry.id), "status": entry.status.value, **(extra_filter or {})}, {"$set": changes}
    )
    return QueueEntry.from_doc(entry.to_doc() | changes) if result.modified_count else None


async def complete_many(db: AsyncDatabase, entries: list[QueueEntry], now: int) -> list[QueueEntry]:
    """ADMITTED -> COMPLETED for entries whose sessions bought, in one write, each only if it
    still holds the session we read. The entries this call completed, as they were before."""
    # One entry twice (two finishes of one order in one ending group) is completed, and counted, once.
    entries = list({e.id: e for e in entries}.values())
    if len(entries) == 1:
        done = await transition(db, entries[0], {"status": QueueStatus.COMPLETED.value, "endedAtUtc": now},
                                {"sessionId": ObjectId(entries[0].session_id)})
        return entries if done is not None else []
    mark = ObjectId()  # what this call completed, told apart from anybody else's
    # `_id` first: SecantusDB then finds the candidates by point lookups (storage `_try_index_id_keys`).
    query = {"_id": {"$in": [ObjectId(e.id) for e in entries]}, "status": QueueStatus.ADMITTED.value,
             "sessionId": {"$in": [ObjectId(e.session_id) for e in entries]}}
    result = await db.eventQueue.update_many(
        query, {"$set": {"status": QueueStatus.COMPLETED.value, "endedAtUtc": now, "endedBy": mark}})
    if result.modified_count == len(entries):
        return entries
    ours = {str(d["_id"]) async for d in db.eventQueue.find({"_id": query["_id"]}, projection={"endedBy": 1})
            if d.get("endedBy") == mark}
    return [e for e in entries if e.id in ours]


class Attach(NamedTuple):
    """A checkout to start from an ADMITTED entry, as read: its session, when it expires, and
    the stock it holds (taken already; None: it holds nothing)."""

    entry: QueueEntry
    session_id: ObjectId
    now: int
    expires_at: int
    held: list[HeldItem] | None = None


_HOLD_FIELDS = ("heldItems", "holdState")


async def attach_sessions(db: AsyncDatabase, attaches: list[Attach]) -> list[QueueEntry | None]:
    """Record each checkout (and its hold) on its entry if the entry is still an unexpired
    admission with no session, in one command; the entry after it, or None where another
    session came first (or the entry ended)."""
    holding = any(a.held for a in attaches)

    def attached(a: Attach) -> dict[str, Any]:
        fields = {"sessionId": a.session_id, "checkoutStartedAtUtc": a.now, "expiresAtUtc": a.expires_at}
        if holding:
            fields |= {"heldItems": [i.model_dump(by_alias=True) for i in a.held] if a.held else None,
                       "holdState": HoldState.HELD.value if a.held else None}
        return fields

    # One update_many whose pipeline looks up each entry's own values: half the time of one
    # statement per entry (SecantusDB plans and runs each statement of a bulk write alone).
    ids = [ObjectId(a.entry.id) for a in attaches]

    def own(field: str) -> dict[str, Any]:
        return {"$arrayElemAt": [{"$literal": [attached(a)[field] for a in attaches]}, {"$indexOfArray": [ids, "$_id"]}]}

    fields = ("sessionId", "checkoutStartedAtUtc", "expiresAtUtc") + (_HOLD_FIELDS if holding else ())

    # `_id` first: SecantusDB then finds the candidates by point lookups.
    result = await db.eventQueue.update_many(
        {"_id": {"$in": ids}, "status": QueueStatus.ADMITTED.value, "sessionId": None,
         "expiresAtUtc": {"$gt": max(a.now for a in attaches)}},
        [{"$set": {field: own(field) for field in fields}}],
    )
    if result.modified_count == len(attaches):
        won = [True] * len(attaches)
    else:  # some lost to another session: the stored session ids say which
        stored = {d["_id"]: d.get("sessionId")
                  async for d in db.eventQueue.find({"_id": {"$in": ids}}, projection={"sessionId": 1})}
        won = [stored.get(ObjectId(a.entry.id)) == a.session_id for a in attaches]
    return [QueueEntry.from_doc(a.entry.to_doc() | attached(a)) if ok else None for a, ok in zip(attaches, won)]


async def buy_holds(db: AsyncDatabase, buys: list[tuple[QueueEntry, str]]) -> list[bool]:
    """The stock each entry's checkout holds goes to its order (entry, order id): HELD -> BOUGHT,
    once, in one command; for each, False if its hold was returned (the checkout ended) or
    bought by another order first."""
    ids = [ObjectId(e.id) for e, _ in buys]
    orders = [ObjectId(o) for _, o in buys]
    # `_id` first: SecantusDB then finds the candidates by point lookups. A session id is its entry's alone.
    result = await db.eventQueue.update_many(
        {"_id": {"$in": ids}, "sessionId": {"$in": [ObjectId(e.session_id) for e, _ in buys]},
         "holdState": HoldState.HELD.value},
        [{"$set": {"holdState": HoldState.BOUGHT.value,
                   "holdOrderId": {"$arrayElemAt": [{"$literal": orders}, {"$indexOfArray": [ids, "$_id"]}]}}}])
    if result.modified_count == len(buys):
        return [True] * len(buys)
    stored = {d["_id"]: d.get("holdOrderId") async for d in db.eventQueue.find({"_id": {"$in": ids}},
                                                                               projection={"holdOrderId": 1})}
    return [stored.get(i) == o for i, o in zip(ids, orders)]


async def hold_bought_by(db: AsyncDatabase, event_id: str, user_id: str, order_id: str) -> bool:
    """Did this order buy the stock its buyer's checkout held?"""
    return await db.eventQueue.count_documents(
        {"eventId": ObjectId(event_id), "userId": user_id, "holdOrderId": ObjectId(order_id)}) > 0


async def live_holds(db: AsyncDatabase, event_id: str) -> list[QueueEntry]:
    """The event's ADMITTED entries whose checkout holds stock not yet bought."""
    cursor = db.eventQueue.find({"eventId": ObjectId(event_id), "status": QueueStatus.ADMITTED.value,
                                 "holdState": HoldState.HELD.value})
    return [QueueEntry.from_doc(d) async for d in cursor]


async def due(db: AsyncDatabase, now: int, limit: int, event_id: str | None = None) -> list[QueueEntry]:
    """Live entries whose expiresAt has passed (oldest first)."""
    query: dict[str, Any] = {
        "expiresAtUtc": {"$lte": now},
        "status": {"$in": [QueueStatus.WAITING.value, QueueStatus.ADMITTED.value]},
    }
    if event_id is not None:
        query["eventId"] = ObjectId(event_id)
    cursor = db.eventQueue.find(query).sort([("expiresAtUtc", ASCENDING)]).limit(limit)
    return [QueueEntry.from_doc(d) async for d in cursor]


# WAITING entries closed per write at a sell-out: each chunk is told as soon as it is written,
# and other writes to the queue get their turn between chunks.
CLOSE_CHUNK = 200


async def close(db: AsyncDatabase, event_id: str, now: int, *, keep_checkouts: bool) -> AsyncIterator[list[QueueEntry]]:
    """Every WAITING entry of the event, and every ADMITTED one (only those that started no
    checkout if `keep_checkouts`), becomes CLOSED; yields the entries this call closed, a
    chunk at a time.

    Each write is guarded on the status (and on no session, if `keep_checkouts`), so an
    entry admitted or checking out meanwhile is either closed here or left to its own path.
    WAITING entries are closed by seq ranges, a filter the (eventId, status, seq) index
    serves whole. Not by `_id: {$in: [...]}`: SecantusDB matches `$in` against the whole
    list for every document (1,500 entries: 4.3 s, against 0.7 s by range).
    """
    mark = ObjectId()  # what this call closed, told apart from a second closer's
    closing = {"$set": {"status": QueueStatus.CLOSED.value, "endedAtUtc": now, "closedBy": mark}}
    event = ObjectId(event_id)

    async def closed_by_us(query: dict[str, Any]) -> list[QueueEntry]:
        return [QueueEntry.from_doc(d) async for d in db.eventQueue.find({**query, "status": QueueStatus.CLOSED.value})
                if d.get("closedBy") == mark]

    waiting = {"eventId": event, "status": QueueStatus.WAITING.value}
    seqs = sorted([d["seq"] async for d in db.eventQueue.find(waiting, projection={"seq": 1, "_id": 0})])
    for start in range(0, len(seqs), CLOSE_CHUNK):
        span = {"$gte": seqs[start], "$lte": seqs[min(start + CLOSE_CHUNK, len(seqs)) - 1]}
        await db.eventQueue.update_many({**waiting, "seq": span}, closing)
        yield await closed_by_us({"eventId": event, "seq": span})

    # ADMITTED ones (CHECKOUT_LIMIT at most): found through the index, written by _id.
    admitted = {"eventId": event, "status": QueueStatus.ADMITTED.value}
    found = [d async for d in db.eventQueue.find(admitted, projection={"_id": 1, "sessionId": 1})]
    chosen = [d["_id"] for d in found if not (keep_checkouts and d.get("sessionId"))]
    if chosen:
        guard: dict[str, Any] = {"_id": {"$in": chosen}, "status": QueueStatus.ADMITTED.value}
        if keep_checkouts:
            guard["sessionId"] = None
        await db.eventQueue.update_many(guard, closing)
        yield await closed_by_us({"_id": {"$in": chosen}})


async def admitted(db: AsyncDatabase, event_id: str) -> list[QueueEntry]:
    """The event's ADMITTED entries (CHECKOUT_LIMIT at most), through the (eventId, status, seq) index."""
    cursor = db.eventQueue.find({"eventId": ObjectId(event_id), "status": QueueStatus.ADMITTED.value})
    return [QueueEntry.from_doc(d) async for d in cursor]


async def live_entries(db: AsyncDatabase, event_id: str) -> list[QueueEntry]:
    cursor = db.eventQueue.find(
        {"eventId": ObjectId(event_id), "status": {"$in": [QueueStatus.WAITING.value, QueueStatus.ADMITTED.value]}}
    )
    return [QueueEntry.from_doc(d) async for d in cursor]


async def count(db: AsyncDatabase, event_id: str, status: QueueStatus) -> int:
    return await db.eventQueue.count_documents({"eventId": ObjectId(event_id), "status": status.value})


async def events_with(db: AsyncDatabase, status: QueueStatus) -> list[str]:
    """Events with an entry in `status` (for the sweep)."""
    return [str(e) for e in await db.eventQueue.distinct("eventId", {"status": status.value})]


async def in_status(db: AsyncDatabase, event_id: str, status: QueueStatus, limit: int = 1000) -> list[QueueEntry]:
    cursor = db.eventQueue.find({"eventId": ObjectId(event_id), "status": status.value}).limit(limit)
    return [QueueEntry.from_doc(d) async for d in cursor]


async def by_ids(db: AsyncDatabase, ids: list[str]) -> list[QueueEntry]:
    """These entries (`_id` first: point lookups on SecantusDB), in seq order."""
    if not ids:
        return []
    found = [QueueEntry.from_doc(d) async for d in db.eventQueue.find({"_id": {"$in": [ObjectId(i) for i in ids]}})]
    return sorted(found, key=lambda e: e.seq)


async def pre_queued_ids(db: AsyncDatabase, event_id: str) -> list[str]:
    """The ids of the event's PRE_QUEUE entries, in `_id` order (what a draw is made of)."""
    cursor = db.eventQueue.find({"eventId": ObjectId(event_id), "status": QueueStatus.PRE_QUEUE.value},
                                projection={"_id": 1}).sort([("_id", ASCENDING)])
    return [str(d["_id"]) async for d in cursor]


class Seat(NamedTuple):
    """A drawn entry's place: its seq, status, admission (if its turn came with it) and expiry."""

    entry_id: str
    seq: int
    status: QueueStatus
    admitted_at: int | None
    expires_at: int


async def seat_pre_queued(db: AsyncDatabase, seats: list[Seat]) -> set[str]:
    """Give drawn entries their places in one command, each only if it is still PRE_QUEUE; the
    ids this call wrote (`_id` first: point lookups on SecantusDB)."""
    ids = [ObjectId(s.entry_id) for s in seats]

    def own(values: list[Any]) -> dict[str, Any]:
        return {"$arrayElemAt": [{"$literal": values}, {"$indexOfArray": [ids, "$_id"]}]}

    mark = ObjectId()  # what this call wrote, told apart from an earlier run of the same draw
    await db.eventQueue.update_many(
        {"_id": {"$in": ids}, "status": QueueStatus.PRE_QUEUE.value},
        [{"$set": {"seq": own([s.seq for s in seats]), "status": own([s.status.value for s in seats]),
                   "admittedAtUtc": own([s.admitted_at for s in seats]), "expiresAtUtc": own([s.expires_at for s in seats]),
                   "admittedBy": mark}}])
    return {str(d["_id"]) async for d in db.eventQueue.find({"_id": {"$in": ids}}, projection={"admittedBy": 1})
            if d.get("admittedBy") == mark}


async def holds_seq(db: AsyncDatabase, entry_id: str, seq: int) -> bool:
    """Does this entry hold `seq` (a draw's earlier run wrote it)?"""
    return await db.eventQueue.count_documents({"_id": ObjectId(entry_id), "seq": seq}) > 0


async def close_pre_queue(db: AsyncDatabase, event_id: str, now: int) -> None:
    """Every PRE_QUEUE entry of the event becomes CLOSED (its queue closed before the draw)."""
    await db.eventQueue.update_many({"eventId": ObjectId(event_id), "status": QueueStatus.PRE_QUEUE.value},
                                    {"$set": {"status": QueueStatus.CLOSED.value, "endedAtUtc": now}})


async def count_all(db: AsyncDatabase, status: QueueStatus) -> int:
    """Entries in `status` across every event (for the queue-length gauges; a minute apart)."""
    return await db.eventQueue.count_documents({"status": status.value})


async def seqs_above(db: AsyncDatabase, event_id: str, seq: int) -> set[int]:
    """The seqs above `seq` that some entry of the event holds (for the repair of lost joins)."""
    cursor = db.eventQueue.find({"eventId": ObjectId(event_id), "seq": {"$gt": seq}}, projection={"seq": 1, "_id": 0})
    return {d["seq"] async for d in cursor}
