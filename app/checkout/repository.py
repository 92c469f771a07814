"""The checkoutSessions collection: the record of every session that ended."""

from __future__ import annotations

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from app.checkout.models import CheckoutSession, CheckoutStatus

_DUPLICATE_KEY = 11000


async def record(db: AsyncDatabase, sessions: list[CheckoutSession]) -> None:
    """Write the records of ended sessions. One already ended stays as it is; one written
    ACTIVE at its start (by versions before 2026-11-26) is ended."""
    try:
        await db.checkoutSessions.insert_many([s.to_doc() for s in sessions], ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != _DUPLICATE_KEY for e in errors):
            raise
        for error in errors:
            ended = sessions[error["index"]]
            await db.checkoutSessions.update_one(
                {"_id": ObjectId(ended.id), "status": CheckoutStatus.ACTIVE.value},
                {"$set": {"status": ended.status.value, "endedAtUtc": ended.ended_at_utc}},
            )


async def latest_for(db: AsyncDatabase, event_id: str, user_id: str) -> CheckoutSession | None:
    doc = await db.checkoutSessions.find_one(
        {"eventId": ObjectId(event_id), "userId": user_id}, sort=[("createdAtUtc", DESCENDING), ("_id", DESCENDING)]
    )
    return CheckoutSession.from_doc(doc) if doc else None
