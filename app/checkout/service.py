"""Checkout sessions: a buyer's time to buy, started from their admission.

An ACTIVE session lives on the buyer's queue entry (its `sessionId`, when it
started, and the entry's expiry, which becomes the session's): starting
checkout is one guarded write to the entry. The session's record in
`checkoutSessions` is written once, when it ends (COMPLETED or EXPIRED), by
whoever ended the entry, which a guarded transition makes exactly one caller.

The slot behind a session is the admission's, counted with the queue's turns
(app/catalog/turns.py), never by counting documents.
"""

from __future__ import annotations

from app.checkout import repository as repo
from app.checkout.models import CheckoutSession, CheckoutStatus
from app.queue.models import QueueEntry
from app.runtime import Runtime


def active_session(entry: QueueEntry) -> CheckoutSession:
    """The ACTIVE session an admission started (`entry.session_id` is set)."""
    assert entry.session_id is not None
    return _session(entry, CheckoutStatus.ACTIVE, ended_at=None)


async def latest_session(rt: Runtime, *, event_id: str, user_id: str) -> CheckoutSession | None:
    """The buyer's most recent ended session for the event."""
    return await repo.latest_for(rt.db, event_id, user_id)


async def end_sessions(rt: Runtime, *, entries: list[QueueEntry], status: CheckoutStatus, now: int) -> None:
    """Record the sessions of these entries, which just ended (their transitions were ours)."""
    records = [_session(e, status, ended_at=now) for e in entries if e.session_id is not None]
    if records:
        await repo.record(rt.db, records)


def _session(entry: QueueEntry, status: CheckoutStatus, *, ended_at: int | None) -> CheckoutSession:
    return CheckoutSession(
        _id=entry.session_id, eventId=entry.event_id, userId=entry.user_id, queueEntryId=entry.id, status=status,
        createdAtUtc=entry.checkout_started_at_utc or entry.admitted_at_utc or entry.joined_at_utc,
        expiresAtUtc=entry.expires_at_utc if ended_at is None else min(entry.expires_at_utc, ended_at),
        endedAtUtc=ended_at, heldItems=entry.held_items,
    )
