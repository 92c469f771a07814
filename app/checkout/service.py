"""Checkout sessions: a buyer's time to buy, started from their admission.

The slot behind a session is the admission's, counted on the event with the
queue's turns (app/catalog/turns.py), never by counting documents.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from app.checkout import repository as repo
from app.checkout.models import CheckoutSession, CheckoutStatus
from app.runtime import Runtime


async def open_session(
    rt: Runtime, *, session_id: ObjectId, event_id: str, user_id: str, queue_entry_id: str, now: int, expires_at: int
) -> CheckoutSession:
    """Create the ACTIVE session whose id the admission already recorded; None if that
    admission ended first (its end left the session's record, EXPIRED, under this id)."""
    session = CheckoutSession(
        _id=str(session_id), eventId=event_id, userId=user_id, queueEntryId=queue_entry_id,
        status=CheckoutStatus.ACTIVE, createdAtUtc=now, expiresAtUtc=expires_at,
    )
    try:
        await repo.insert(rt.db, session)
    except DuplicateKeyError:
        return None
    return session


async def get_session(rt: Runtime, *, session_id: str) -> CheckoutSession | None:
    return await repo.get(rt.db, session_id)


async def latest_session(rt: Runtime, *, event_id: str, user_id: str) -> CheckoutSession | None:
    """The buyer's most recent session for the event (ACTIVE or not)."""
    return await repo.latest_for(rt.db, event_id, user_id)


async def end_session(
    rt: Runtime, *, session_id: str, status: CheckoutStatus, now: int, event_id: str, user_id: str, queue_entry_id: str
) -> bool:
    """ACTIVE -> COMPLETED or EXPIRED, once; True for the caller that did it.

    A session its admission points at but whose insert has not landed yet is
    written here as already ended, so that the late insert fails.
    """
    if await repo.end(rt.db, session_id, status, now):
        return True
    ended = CheckoutSession(
        _id=session_id, eventId=event_id, userId=user_id, queueEntryId=queue_entry_id,
        status=status, createdAtUtc=now, expiresAtUtc=now, endedAtUtc=now,
    )
    await repo.insert_if_missing(rt.db, ended)
    return False


async def end_all_sessions(rt: Runtime, *, event_id: str, now: int) -> int:
    """Expire every ACTIVE session of the event (cancellation)."""
    return await repo.end_all_active(rt.db, event_id, CheckoutStatus.EXPIRED, now)
