"""The checkoutSessions collection."""

from __future__ import annotations

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from app.checkout.models import CheckoutSession, CheckoutStatus


async def insert(db: AsyncDatabase, session: CheckoutSession) -> None:
    await db.checkoutSessions.insert_one(session.to_doc())


async def insert_if_missing(db: AsyncDatabase, session: CheckoutSession) -> None:
    """Write `session` unless a session with its id exists (an ended record for a late insert to meet)."""
    fields = {k: v for k, v in session.to_doc().items() if k != "_id"}
    await db.checkoutSessions.update_one({"_id": ObjectId(session.id)}, {"$setOnInsert": fields}, upsert=True)


async def get(db: AsyncDatabase, session_id: str) -> CheckoutSession | None:
    doc = await db.checkoutSessions.find_one({"_id": ObjectId(session_id)})
    return CheckoutSession.from_doc(doc) if doc else None


async def latest_for(db: AsyncDatabase, event_id: str, user_id: str) -> CheckoutSession | None:
    doc = await db.checkoutSessions.find_one(
        {"eventId": ObjectId(event_id), "userId": user_id}, sort=[("createdAtUtc", DESCENDING), ("_id", DESCENDING)]
    )
    return CheckoutSession.from_doc(doc) if doc else None


async def end(db: AsyncDatabase, session_id: str, status: CheckoutStatus, now: int) -> bool:
    """ACTIVE -> `status`, once."""
    result = await db.checkoutSessions.update_one(
        {"_id": ObjectId(session_id), "status": CheckoutStatus.ACTIVE.value},
        {"$set": {"status": status.value, "endedAtUtc": now}},
    )
    return result.modified_count == 1


async def end_all_active(db: AsyncDatabase, event_id: str, status: CheckoutStatus, now: int) -> int:
    result = await db.checkoutSessions.update_many(
        {"eventId": ObjectId(event_id), "status": CheckoutStatus.ACTIVE.value},
        {"$set": {"status": status.value, "endedAtUtc": now}},
    )
    return result.modified_count
