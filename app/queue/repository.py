"""The eventQueue collection: every query the queue runs."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from app.queue.models import QueueEntry, QueueStatus

HISTORY_KEPT = 20
_RECORD_FIELDS = ("seq", "status", "joinedAtUtc", "admittedAtUtc", "endedAtUtc", "expiresAtUtc")


async def get(db: AsyncDatabase, event_id: str, user_id: str) -> QueueEntry | None:
    doc = await db.eventQueue.find_one({"eventId": ObjectId(event_id), "userId": user_id})
    return QueueEntry.from_doc(doc) if doc else None


async def insert(db: AsyncDatabase, entry: QueueEntry) -> None:
    """Insert a first entry; DuplicateKeyError if the buyer already has one for the event."""
    await db.eventQueue.insert_one(entry.to_doc())


async def restart(db: AsyncDatabase, old: QueueEntry, fresh: dict[str, Any]) -> QueueEntry | None:
    """Turn a finished entry into a new place, keeping the old one in `history`.

    Guarded on the old status and seq: of two racing rejoins, one wins.
    """
    record = {k: v for k, v in old.to_doc().items() if k in _RECORD_FIELDS}
    doc = await db.eventQueue.find_one_and_update(
        {"_id": ObjectId(old.id), "status": old.status.value, "seq": old.seq},
        {
            "$set": fresh,
            "$unset": {f: "" for f in ("admittedAtUtc", "cooldownUntilUtc", "sessionId", "endedAtUtc") if f not in fresh},
            "$push": {"history": {"$each": [record], "$slice": -HISTORY_KEPT}},
        },
        return_document=ReturnDocument.AFTER,
    )
    return QueueEntry.from_doc(doc) if doc else None


async def lowest_admissible(db: AsyncDatabase, event_id: str, now: int, count: int) -> list[str]:
    """Ids of the `count` WAITING, unexpired entries with the lowest seqs, in seq order."""
    cursor = db.eventQueue.find(
        {"eventId": ObjectId(event_id), "status": QueueStatus.WAITING.value, "expiresAtUtc": {"$gt": now}},
        projection={"_id": 1},
    ).sort([("seq", ASCENDING)]).limit(count)
    return [str(d["_id"]) async for d in cursor]


async def admit(db: AsyncDatabase, entry_ids: list[str], now: int, expires_at: int) -> list[QueueEntry]:
    """ADMIT those of `entry_ids` still WAITING and unexpired, in one write; the ones admitted."""
    ids = [ObjectId(i) for i in entry_ids]
    await db.eventQueue.update_many(
        {"_id": {"$in": ids}, "status": QueueStatus.WAITING.value, "expiresAtUtc": {"$gt": now}},
        {"$set": {"status": QueueStatus.ADMITTED.value, "admittedAtUtc": now, "expiresAtUtc": expires_at}},
    )
    # Only the holder of the admission lease admits, so this instant marks our batch.
    cursor = db.eventQueue.find({"_id": {"$in": ids}, "status": QueueStatus.ADMITTED.value, "admittedAtUtc": now})
    return sorted([QueueEntry.from_doc(d) async for d in cursor], key=lambda e: e.seq)


async def transition(
    db: AsyncDatabase, entry_id: str, from_status: QueueStatus, changes: dict[str, Any], extra_filter: dict | None = None
) -> QueueEntry | None:
    """Apply `changes` only if the entry is still in `from_status`: exactly one caller wins."""
    doc = await db.eventQueue.find_one_and_update(
        {"_id": ObjectId(entry_id), "status": from_status.value, **(extra_filter or {})},
        {"$set": changes},
        return_document=ReturnDocument.AFTER,
    )
    return QueueEntry.from_doc(doc) if doc else None


async def attach_session(db: AsyncDatabase, entry_id: str, session_id: ObjectId, expires_at: int) -> QueueEntry | None:
    """Record the checkout started from this admission; only the first caller wins."""
    doc = await db.eventQueue.find_one_and_update(
        {"_id": ObjectId(entry_id), "status": QueueStatus.ADMITTED.value, "sessionId": None},
        {"$set": {"sessionId": session_id, "expiresAtUtc": expires_at}},
        return_document=ReturnDocument.AFTER,
    )
    return QueueEntry.from_doc(doc) if doc else None


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


async def close(
    db: AsyncDatabase, event_id: str, now: int, *, keep_checkouts: bool
) -> tuple[list[QueueEntry], int, int]:
    """Every WAITING entry of the event, and every ADMITTED one (only those that started no
    checkout if `keep_checkouts`), becomes CLOSED in two writes; the closed entries, and how
    many of them were WAITING and how many ADMITTED (the slots they held).

    Each write is guarded on the status (and on no session, if `keep_checkouts`), so an
    entry admitted or checking out meanwhile is either closed here or left to its own path.
    """
    closing = {"$set": {"status": QueueStatus.CLOSED.value, "endedAtUtc": now}}
    event = ObjectId(event_id)
    waiting = (await db.eventQueue.update_many({"eventId": event, "status": QueueStatus.WAITING.value}, closing)).modified_count
    admitted = {"eventId": event, "status": QueueStatus.ADMITTED.value}
    if keep_checkouts:
        admitted["sessionId"] = None
    slots = (await db.eventQueue.update_many(admitted, closing)).modified_count
    # This instant marks what was closed here (a second closer in the same millisecond
    # reports the same entries again: their messages are the same, so harmless).
    cursor = db.eventQueue.find({"eventId": event, "status": QueueStatus.CLOSED.value, "endedAtUtc": now})
    return [QueueEntry.from_doc(d) async for d in cursor], waiting, slots


async def live_entries(db: AsyncDatabase, event_id: str) -> list[QueueEntry]:
    cursor = db.eventQueue.find(
        {"eventId": ObjectId(event_id), "status": {"$in": [QueueStatus.WAITING.value, QueueStatus.ADMITTED.value]}}
    )
    return [QueueEntry.from_doc(d) async for d in cursor]


async def count(db: AsyncDatabase, event_id: str, status: QueueStatus) -> int:
    return await db.eventQueue.count_documents({"eventId": ObjectId(event_id), "status": status.value})


async def take_admission_lease(db: AsyncDatabase, event_id: str, owner: str, now: int, until: int) -> bool:
    """Become the event's only admitter until `until`, unless someone else holds an unexpired lease."""
    held = await db.admissionLeases.find_one({"_id": ObjectId(event_id), "until": {"$gt": now}}, projection={"_id": 1})
    if held is not None:
        return False  # a read, not a failing write: a crowd of joins must not pile onto one document
    try:
        await db.admissionLeases.update_one(
            {"_id": ObjectId(event_id), "until": {"$lte": now}}, {"$set": {"until": until, "owner": owner}}, upsert=True
        )
    except DuplicateKeyError:
        return False  # held: the filter missed, and the upsert met the existing lease
    return True


async def renew_admission_lease(db: AsyncDatabase, event_id: str, owner: str, until: int) -> bool:
    """Extend our lease; False if it expired and someone else took it."""
    result = await db.admissionLeases.update_one({"_id": ObjectId(event_id), "owner": owner}, {"$set": {"until": until}})
    return result.matched_count == 1


async def give_back_admission_lease(db: AsyncDatabase, event_id: str, owner: str) -> None:
    await db.admissionLeases.update_one({"_id": ObjectId(event_id), "owner": owner}, {"$set": {"until": 0}})


async def events_with_waiting(db: AsyncDatabase) -> list[str]:
    return [str(e) for e in await db.eventQueue.distinct("eventId", {"status": QueueStatus.WAITING.value})]


async def count_all(db: AsyncDatabase, status: QueueStatus) -> int:
    """Entries in `status` across every event (for the queue-length gauges; a minute apart)."""
    return await db.eventQueue.count_documents({"status": status.value})


async def any_admissible(db: AsyncDatabase, event_id: str, now: int) -> bool:
    """Is anyone WAITING whose place has not expired (who could be admitted now)?"""
    doc = await db.eventQueue.find_one(
        {"eventId": ObjectId(event_id), "status": QueueStatus.WAITING.value, "expiresAtUtc": {"$gt": now}},
        projection={"_id": 1},
    )
    return doc is not None


async def count_waiting_before(db: AsyncDatabase, event_id: str, seq: int) -> int:
    return await db.eventQueue.count_documents(
        {"eventId": ObjectId(event_id), "status": QueueStatus.WAITING.value, "seq": {"$lt": seq}}
    )


async def waiting_seqs(db: AsyncDatabase, event_id: str) -> list[int]:
    """Every WAITING seq of the event, ascending: one round trip feeds all position subscribers."""
    cursor = db.eventQueue.find(
        {"eventId": ObjectId(event_id), "status": QueueStatus.WAITING.value}, projection={"seq": 1, "_id": 0}
    ).sort([("seq", ASCENDING)]).batch_size(10_000)
    return [d["seq"] async for d in cursor]
