"""Checkout sessions, and the event's checkout slots behind them.

A slot is taken when a buyer is admitted and given back when that admission
ends (purchase, leave, expiry, cancellation). Slots are counted on the event
with a guarded counter (catalog), never by counting documents and writing.
"""

from __future__ import annotations

from bson import ObjectId

from app.catalog import service as catalog
from app.catalog.repository import SlotGrant
from app.checkout import repository as repo
from app.checkout.models import CheckoutSession, CheckoutStatus
from app.runtime import Runtime


async def reserve_slots(rt: Runtime, *, event_id: str, wanted: int) -> SlotGrant:
    """Take up to `wanted` free slots at once (none for a sold-out or cancelled event)."""
    return await catalog.reserve_slots(rt.db, event_id=event_id, wanted=wanted, limit=rt.settings.checkout_limit)


async def release_slot(rt: Runtime, *, event_id: str, count: int = 1) -> None:
    await catalog.give_back(rt.db, event_id=event_id, slots=count)


async def open_session(
    rt: Runtime, *, session_id: ObjectId, event_id: str, user_id: str, queue_entry_id: str, now: int, expires_at: int
) -> CheckoutSession:
    """Create the ACTIVE session whose id the admission already recorded."""
    session = CheckoutSession(
        _id=str(session_id), eventId=event_id, userId=user_id, queueEntryId=queue_entry_id,
        status=CheckoutStatus.ACTIVE, createdAtUtc=now, expiresAtUtc=expires_at,
    )
    await repo.insert(rt.db, session)
    return session


async def get_session(rt: Runtime, *, session_id: str) -> CheckoutSession | None:
    return await repo.get(rt.db, session_id)


async def latest_session(rt: Runtime, *, event_id: str, user_id: str) -> CheckoutSession | None:
    """The buyer's most recent session for the event (ACTIVE or not)."""
    return await repo.latest_for(rt.db, event_id, user_id)


async def end_session(rt: Runtime, *, session_id: str, status: CheckoutStatus, now: int) -> bool:
    """ACTIVE -> COMPLETED or EXPIRED, once; True for the caller that did it."""
    return await repo.end(rt.db, session_id, status, now)


async def end_all_sessions(rt: Runtime, *, event_id: str, now: int) -> int:
    """Expire every ACTIVE session of the event (cancellation)."""
    return await repo.end_all_active(rt.db, event_id, CheckoutStatus.EXPIRED, now)
