"""The waitlist collection: every query the waitlist runs. Each move of an entry is guarded on
the status it was read in, so of two racing requests exactly one wins."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from app.waitlist.models import WaitlistEntry, WaitlistStatus


async def get(db: AsyncDatabase, event_id: str, user_id: str) -> WaitlistEntry | None:
    doc = await db.waitlist.find_one({"eventId": ObjectId(event_id), "userId": user_id})
    return WaitlistEntry.from_doc(doc) if doc else None


async def insert(db: AsyncDatabase, entry: WaitlistEntry) -> bool:
    """False if the buyer is on the event's waitlist already (or was)."""
    try:
        await db.waitlist.insert_one(entry.to_doc())
    except DuplicateKeyError:
        return False
    return True


async def move(db: AsyncDatabase, entry: WaitlistEntry, changes: dict[str, Any]) -> WaitlistEntry | None:
    """Apply `changes` if the entry is still as read (status and joinedAt); the entry after it, or None."""
    result = await db.waitlist.update_one(
        {"_id": ObjectId(entry.id), "status": entry.status.value, "joinedAtUtc": entry.joined_at_utc}, {"$set": changes})
    return WaitlistEntry.from_doc(entry.to_doc() | changes) if result.modified_count else None


async def waiting(db: AsyncDatabase, event_id: str, limit: int) -> list[WaitlistEntry]:
    """The event's WAITING entries, oldest first."""
    cursor = db.waitlist.find({"eventId": ObjectId(event_id), "status": WaitlistStatus.WAITING.value}).sort(
        [("joinedAtUtc", ASCENDING), ("_id", ASCENDING)]).limit(limit)
    return [WaitlistEntry.from_doc(d) async for d in cursor]


async def offered(db: AsyncDatabase, event_id: str) -> list[WaitlistEntry]:
    cursor = db.waitlist.find({"eventId": ObjectId(event_id), "status": WaitlistStatus.OFFERED.value})
    return [WaitlistEntry.from_doc(d) async for d in cursor]


async def ahead_of(db: AsyncDatabase, entry: WaitlistEntry) -> int:
    """WAITING entries of the event that joined before this one."""
    return await db.waitlist.count_documents({
        "eventId": ObjectId(entry.event_id), "status": WaitlistStatus.WAITING.value,
        "joinedAtUtc": {"$lt": entry.joined_at_utc}})


async def events_on_list(db: AsyncDatabase) -> list[str]:
    """Events with a buyer waiting or offered (for the sweep)."""
    statuses = [WaitlistStatus.WAITING.value, WaitlistStatus.OFFERED.value]
    return [str(e) for e in await db.waitlist.distinct("eventId", {"status": {"$in": statuses}})]
