"""The virtual queue: join, leave, admission in seq order, expiry, and the start of checkout.

Every state change is one guarded `find_one_and_update` on the entry (its
current status in the filter), so of two racing requests exactly one wins;
the slot counter moves only for the winner. An admission takes a slot first
(guarded counter) and then the lowest WAITING seq, so buyers are admitted in
order. Expiry is enforced whenever an entry is read for a decision, and by
`expire_due`, which the background sweep calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from app import metrics
from app.auth import Viewer, require_user
from app.catalog import service as catalog
from app.catalog.models import Event, EventStatus, EventTicket
from app.checkout import service as checkout
from app.checkout.models import CheckoutSession, CheckoutStatus
from app.errors import ErrorCode, fail
from app.pubsub import channels
from app.queue import repository as repo
from app.queue.models import QueueEntry, QueueStatus
from app.runtime import Runtime
from app.timeutil import from_ms, now_ms

log = logging.getLogger("app.queue")

SWEEP_BATCH = 500
# Longer than an admission round takes; a crashed admitter blocks admission at most this long.
ADMISSION_LEASE_MS = 5_000
# Buyers one request admits itself before handing the rest to a background task.
ADMIT_INLINE = 5
# Buyers admitted per database round (one slot increment, one update).
ADMIT_BATCH = 50


# --- reading -------------------------------------------------------------------


async def get_entry(rt: Runtime, *, event_id: str, user_id: str) -> QueueEntry | None:
    """The buyer's entry for the event (expired on the spot if its time has passed)."""
    if not ObjectId.is_valid(event_id):
        return None
    entry = await repo.get(rt.db, event_id, user_id)
    return await _expire_if_due(rt, entry, now_ms()) if entry else None


async def position(rt: Runtime, entry: QueueEntry) -> int | None:
    """1-based place among the event's WAITING entries; None unless WAITING."""
    if entry.status is not QueueStatus.WAITING:
        return None
    return await repo.count_waiting_before(rt.db, entry.event_id, entry.seq) + 1


async def waiting_seqs(rt: Runtime, *, event_id: str) -> list[int]:
    """All WAITING seqs of the event, ascending (positions for every subscriber at once)."""
    return await repo.waiting_seqs(rt.db, event_id)


async def waiting_count(rt: Runtime, *, event_id: str) -> int:
    return await repo.count(rt.db, event_id, QueueStatus.WAITING)


# --- joining and leaving -------------------------------------------------------


async def join_queue(rt: Runtime, *, actor: Viewer, event_id: str) -> QueueEntry:
    """M3: a place at the back of the queue, or the buyer's live entry unchanged."""
    user_id = require_user(actor)
    event, tickets = await catalog.sale_view_of(rt.db, event_id=event_id, field="eventId")
    now = now_ms()
    existing = await repo.get(rt.db, event.id, user_id)
    if existing is not None:
        existing = await _expire_if_due(rt, existing, now)
        if existing.is_live():
            return existing
        if existing.status is QueueStatus.LEFT and (existing.cooldown_until_utc or 0) > now:
            until = from_ms(existing.cooldown_until_utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            raise fail(ErrorCode.QUEUE_COOLDOWN, f"you left this queue; you may join again from {until}")
    _require_on_sale(event, tickets)
    # One write decides the place: with a free slot and nobody ahead, the buyer is ADMITTED
    # in this very answer, however many join at once (DESIGN section 3).
    place = await catalog.take_place(rt.db, event_id=event.id, limit=rt.settings.checkout_limit)
    now = now_ms()
    fresh: dict = {"seq": place.seq, "joinedAtUtc": now}
    if place.admitted:
        fresh |= {"status": QueueStatus.ADMITTED.value, "admittedAtUtc": now,
                  "expiresAtUtc": now + rt.settings.checkout_expiry_seconds * 1000}
    else:
        fresh |= {"status": QueueStatus.WAITING.value, "expiresAtUtc": now + rt.settings.queue_expiry_seconds * 1000}
    if existing is None:
        entry: QueueEntry | None = QueueEntry.model_validate(
            {"_id": str(ObjectId()), "eventId": event.id, "userId": user_id, **fresh}
        )
        try:
            await repo.insert(rt.db, entry)
        except DuplicateKeyError:
            entry = None  # the same buyer's other request got there first
    else:
        entry = await repo.restart(rt.db, existing, fresh)
    if entry is None:
        # The place taken is nobody's: give back what came with it.
        await catalog.give_back(rt.db, event_id=event.id, slots=int(place.admitted), waiting=int(not place.admitted))
        winner = await repo.get(rt.db, event.id, user_id)
        assert winner is not None
        return winner
    await _schedule_expiry(rt, entry)
    if place.admitted:
        metrics.ADMISSIONS.inc()
        await _publish_entry(rt, entry)
        await _publish_queue_changed(rt, event.id)
        return entry
    if place.admission_pending or await _slot_freed_meanwhile(rt, event.id):
        # Free slots go to buyers ahead (or the queue closed): admit them now.
        for changed in await admit_waiting(rt, event_id=event.id, budget=ADMIT_INLINE):
            if changed.id == entry.id:
                entry = changed  # admission published it: no WAITING flash before ADMITTED
    if entry.status is QueueStatus.CLOSED:  # the event sold out (or was cancelled) as we joined
        fresh_event = await catalog.get_event(rt.db, event_id=event.id)
        _require_on_sale(fresh_event, await catalog.ticket_types_of_event(rt.db, event_id=event.id))
    if entry.status is QueueStatus.WAITING:
        await _publish_entry(rt, entry)
        await _publish_queue_changed(rt, event.id)
    return entry


async def _slot_freed_meanwhile(rt: Runtime, event_id: str) -> bool:
    """Did a slot come free since our place was taken? Whoever freed it may have looked
    for WAITING buyers before our entry was written: then nobody would admit us."""
    event = await catalog.find_event(rt.db, event_id=event_id)
    return event is not None and event.active_checkouts < rt.settings.checkout_limit


async def leave_queue(rt: Runtime, *, actor: Viewer, event_id: str) -> QueueEntry:
    """M4: the live entry becomes LEFT, its slot (if admitted) goes to the next buyer."""
    user_id = require_user(actor)
    event = await catalog.get_event(rt.db, event_id=event_id, field="eventId")
    for _ in range(5):  # the entry may be admitted under our feet: re-read and retry
        entry = await get_entry(rt, event_id=event.id, user_id=user_id)
        if entry is None or not entry.is_live():
            raise fail(ErrorCode.NOT_IN_QUEUE, "you are not waiting in or admitted from this event's queue")
        left = await end_admission(rt, entry, QueueStatus.LEFT, now_ms())
        if left is not None:
            return left
    raise fail(ErrorCode.NOT_IN_QUEUE, "your place changed while leaving; try again")


def _require_on_sale(event: Event, tickets: list[EventTicket]) -> None:
    status = catalog.current_status(event, tickets)
    if status is EventStatus.CANCELLED:
        raise fail(ErrorCode.EVENT_CANCELLED, "the event is cancelled")
    if status is EventStatus.SOLD_OUT:
        raise fail(ErrorCode.SOLD_OUT, "the event is sold out")
    if status is not EventStatus.ON_SALE:
        raise fail(ErrorCode.EVENT_NOT_ON_SALE, "tickets for this event are not on sale yet")


# --- admission -----------------------------------------------------------------


async def admit_waiting(rt: Runtime, *, event_id: str, budget: int | None = None) -> list[QueueEntry]:
    """Admit WAITING buyers, lowest seq first, while the event has free checkout slots; the
    entries admitted (or CLOSED, when the event turned out sold out or cancelled).

    One admitter per event at a time (a short lease): when a crowd joins at
    once, racing admitters would all fight over the same lowest entry. A
    caller that finds the lease held returns at once; the holder admits for
    it. After giving the lease back, the holder looks once more, so that a
    buyer who joined while it held the lease is not left waiting.

    A request admits at most ADMIT_INLINE buyers itself (its own answer must
    not wait for a crowd) and leaves the rest to a background task;
    `budget=None` (the background task, the jobs) admits until done.
    """
    admitted: list[QueueEntry] = []
    owner = str(ObjectId())
    while True:
        now = now_ms()
        if not await repo.take_admission_lease(rt.db, event_id, owner, now, now + ADMISSION_LEASE_MS):
            return admitted
        try:
            room = None if budget is None else budget - len(admitted)
            admitted += await _admit_while_slots_free(rt, event_id, room, owner)
        finally:
            await repo.give_back_admission_lease(rt.db, event_id, owner)
        # Whoever joined or freed a slot while we held the lease found it held and left
        # admission to us: look once more.
        if not await _admission_possible(rt, event_id):
            return admitted
        if budget is not None and len(admitted) >= budget:
            _admit_in_background(rt, event_id)
            return admitted


_background: set[asyncio.Task] = set()


def _admit_in_background(rt: Runtime, event_id: str) -> None:
    task = asyncio.create_task(_admit_rest(rt, event_id))
    _background.add(task)  # a reference, or the task could be collected mid-way
    task.add_done_callback(_background.discard)


async def stop_background_admissions() -> None:
    """On shutdown: cancel admission rounds still running (the sweeps pick up what they leave)."""
    tasks = list(_background)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _admit_rest(rt: Runtime, event_id: str) -> None:
    try:
        await admit_waiting(rt, event_id=event_id)
    except Exception:  # noqa: BLE001 - the sweep admits whatever this leaves
        log.exception("background admission on %s failed", event_id)


async def recount_slots(rt: Runtime, *, event_id: str, settle_seconds: float) -> tuple[int, int] | None:
    """Repair: set activeCheckouts to the number of ADMITTED entries; (was, now) if it changed.

    Done under the admission lease, so no admission runs meanwhile (an
    admission takes a slot before it finds a buyer, and may give it back), and
    only if both numbers stay put for `settle_seconds` (a slot being given
    back is between its two writes for a moment). None: nothing done.
    """
    owner = str(ObjectId())
    if not await _wait_for_admission_lease(rt, event_id, owner):
        return None  # admissions kept running: the next repair looks again
    try:
        return await _correct_when_settled(
            rt, event_id, "activeCheckouts", QueueStatus.ADMITTED, settle_seconds,
            lambda event, admitted: 0 if event.status is EventStatus.CANCELLED else admitted,
        )
    finally:
        await repo.give_back_admission_lease(rt.db, event_id, owner)
        # Buyers who joined while we held the lease (or whose slot we just freed) get in now.
        await admit_waiting(rt, event_id=event_id)


async def recount_waiting(rt: Runtime, *, event_id: str, settle_seconds: float) -> tuple[int, int] | None:
    """Repair: set the event's `waiting` to its number of WAITING entries; (was, now) if it changed.

    The count runs ahead of the entries while joins are in flight (a seq is
    taken before its entry is written), and stays ahead after a join crashed
    between the two, which only makes the join's fast path shy. Corrected only
    if both numbers stay put for `settle_seconds`. None: nothing done.
    """
    return await _correct_when_settled(rt, event_id, "waiting", QueueStatus.WAITING, settle_seconds, lambda _, n: n)


# The event's queue counters: document field -> model attribute.
_COUNTERS = {"activeCheckouts": "active_checkouts", "waiting": "waiting"}


async def _correct_when_settled(
    rt: Runtime, event_id: str, field: str, status: QueueStatus, settle_seconds: float,
    expected_of: Callable[[Event, int], int],
) -> tuple[int, int] | None:
    """Set the event's counter `field` to what its `status` entries say it should be, if it
    differs and neither number moves for `settle_seconds`; (was, now) if corrected."""
    event = await catalog.get_event(rt.db, event_id=event_id)
    counted = await repo.count(rt.db, event_id, status)
    held = getattr(event, _COUNTERS[field])
    expected = expected_of(event, counted)
    if expected == held:
        return None
    await asyncio.sleep(settle_seconds)
    again = await catalog.get_event(rt.db, event_id=event_id)
    if getattr(again, _COUNTERS[field]) != held or await repo.count(rt.db, event_id, status) != counted:
        return None
    changed = await catalog.correct_counter(
        rt.db, collection="events", doc_id=event_id, field=field, seen=held, value=expected
    )
    return (held, expected) if changed else None


async def _wait_for_admission_lease(rt: Runtime, event_id: str, owner: str) -> bool:
    """Take the lease, waiting out one lease's life at most (a crashed admitter's lease lapses by then)."""
    deadline = now_ms() + ADMISSION_LEASE_MS + 1000
    while True:
        now = now_ms()
        if await repo.take_admission_lease(rt.db, event_id, owner, now, now + ADMISSION_LEASE_MS):
            return True
        if now > deadline:
            return False
        await asyncio.sleep(0.1)


async def _admission_possible(rt: Runtime, event_id: str) -> bool:
    event = await catalog.find_event(rt.db, event_id=event_id)
    return (
        event is not None
        and event.status is not EventStatus.CANCELLED
        and event.active_checkouts < rt.settings.checkout_limit
        and await repo.any_admissible(rt.db, event_id, now_ms())
    )


async def sample_queue_lengths(rt: Runtime) -> None:
    """Set the WAITING / ADMITTED gauges of /metrics from the database."""
    metrics.QUEUE_WAITING.set(await repo.count_all(rt.db, QueueStatus.WAITING))
    metrics.QUEUE_ADMITTED.set(await repo.count_all(rt.db, QueueStatus.ADMITTED))


async def admit_where_possible(rt: Runtime) -> int:
    """Backstop for the sweep: admit on every event with WAITING buyers (after a crashed admitter)."""
    admitted = 0
    for event_id in await repo.events_with_waiting(rt.db):
        changed = await admit_waiting(rt, event_id=event_id)
        admitted += sum(1 for e in changed if e.status is QueueStatus.ADMITTED)
    return admitted


async def _admit_while_slots_free(rt: Runtime, event_id: str, room: int | None, owner: str) -> list[QueueEntry]:
    """Admit in batches: the lowest WAITING seqs, as many as there are free slots; the
    entries admitted (or closed, if the sale turned out to be over).

    Each batch is a few round trips whatever its size (find the lowest seqs,
    take that many slots with one guarded increment, admit them with one
    update, count them with one more), so a crowd is let in at the database's
    pace, not one by one.
    """
    admitted: list[QueueEntry] = []
    renewed = now_ms()
    while room is None or len(admitted) < room:
        wanted = ADMIT_BATCH if room is None else min(ADMIT_BATCH, room - len(admitted))
        candidates = await repo.lowest_admissible(rt.db, event_id, now_ms(), wanted)
        if not candidates:
            break
        grant = await checkout.reserve_slots(rt, event_id=event_id, wanted=len(candidates))
        if grant.closed:
            # Sold out or cancelled: whoever still waits (a join that raced the closing) is told now.
            admitted += await _close_for_status(rt, event_id)
            break
        taken = grant.taken
        if taken == 0:
            break
        now = now_ms()
        batch = await repo.admit(rt.db, candidates[:taken], now, now + rt.settings.checkout_expiry_seconds * 1000)
        # One write: the admitted no longer wait, and the slots of those who left or
        # expired since we looked go back.
        await catalog.give_back(rt.db, event_id=event_id, slots=taken - len(batch), waiting=len(batch))
        for entry in batch:
            metrics.ADMISSIONS.inc()
            await _schedule_expiry(rt, entry)
            await _publish_entry(rt, entry)
        admitted += batch
        if len(batch) == taken and taken < wanted:
            break  # fewer slots than buyers, or fewer buyers than asked for: nothing more to do now
        if now_ms() - renewed > ADMISSION_LEASE_MS // 5:
            # A long round (a crowd on a slow database) must not outlive its lease,
            # or a second admitter would start beside it and break the seq order.
            renewed = now_ms()
            if not await repo.renew_admission_lease(rt.db, event_id, owner, renewed + ADMISSION_LEASE_MS):
                break
    if admitted:
        log.debug("admitted %d on %s", len(admitted), event_id)
        await _publish_queue_changed(rt, event_id)
    return admitted


async def end_admission(rt: Runtime, entry: QueueEntry, to: QueueStatus, now: int) -> QueueEntry | None:
    """End a live entry as COMPLETED, EXPIRED or LEFT; None if another request ended it first.

    An ADMITTED entry gives back its slot, ends its checkout session and lets
    the next WAITING buyer in.
    """
    changes: dict = {"status": to.value, "endedAtUtc": now}
    if to is QueueStatus.LEFT:
        changes["cooldownUntilUtc"] = now + rt.settings.queue_cooldown_seconds * 1000
    # Guarded on the session too: a checkout started since we read the entry must not be orphaned.
    guard = {"sessionId": ObjectId(entry.session_id) if entry.session_id else None}
    ended = await repo.transition(rt.db, entry.id, entry.status, changes, guard)
    if ended is None:
        return None
    if to is QueueStatus.EXPIRED:
        metrics.EXPIRIES.inc()
    if entry.status is QueueStatus.WAITING:
        await catalog.give_back(rt.db, event_id=entry.event_id, waiting=1)
    if entry.status is QueueStatus.ADMITTED:
        if entry.session_id:
            outcome = CheckoutStatus.COMPLETED if to is QueueStatus.COMPLETED else CheckoutStatus.EXPIRED
            await checkout.end_session(rt, session_id=entry.session_id, status=outcome, now=now)
        await checkout.release_slot(rt, event_id=entry.event_id)
        await admit_waiting(rt, event_id=entry.event_id, budget=ADMIT_INLINE)
    await _publish_entry(rt, ended)
    await _publish_queue_changed(rt, entry.event_id)
    return ended


async def complete_admission(rt: Runtime, *, event_id: str, user_id: str, session_id: str) -> None:
    """After a purchase: the entry of that session becomes COMPLETED and frees its slot."""
    entry = await repo.get(rt.db, event_id, user_id)
    if entry and entry.status is QueueStatus.ADMITTED and entry.session_id == session_id:
        await end_admission(rt, entry, QueueStatus.COMPLETED, now_ms())


async def _expire_if_due(rt: Runtime, entry: QueueEntry, now: int) -> QueueEntry:
    if entry.is_live() and entry.expires_at_utc <= now:
        await end_admission(rt, entry, QueueStatus.EXPIRED, now)
        return await repo.get(rt.db, entry.event_id, entry.user_id) or entry
    return entry


async def expire_if_due(rt: Runtime, *, event_id: str, user_id: str) -> bool:
    """The deferred expiry job: end the buyer's entry if its time has passed; True if it did."""
    entry = await repo.get(rt.db, event_id, user_id)
    now = now_ms()
    if entry is None or not entry.is_live() or entry.expires_at_utc > now:
        return False
    return await end_admission(rt, entry, QueueStatus.EXPIRED, now) is not None


async def expire_due(rt: Runtime, *, now: int | None = None, event_id: str | None = None) -> int:
    """Expire every live entry (and its session) whose time has passed; returns how many."""
    now = now or now_ms()
    expired = 0
    while True:
        batch = await repo.due(rt.db, now, SWEEP_BATCH, event_id)
        for entry in batch:
            if await end_admission(rt, entry, QueueStatus.EXPIRED, now) is not None:
                expired += 1
        if len(batch) < SWEEP_BATCH:
            return expired


async def close_queue(rt: Runtime, *, event_id: str, cancelled: bool) -> list[QueueEntry]:
    """The queue closes: nobody waits for a ticket that no longer exists; the entries closed.

    At a sell-out, WAITING buyers and ADMITTED ones who started no checkout
    become CLOSED and their slots are freed; buyers in an ACTIVE session keep
    it until it ends. At a cancellation every live entry closes and every
    ACTIVE session ends (the event already holds no slots).
    """
    now = now_ms()
    closed, waiting, slots = await repo.close(rt.db, event_id, now, keep_checkouts=not cancelled)
    if cancelled:
        await checkout.end_all_sessions(rt, event_id=event_id, now=now)
    await catalog.give_back(rt.db, event_id=event_id, slots=slots, waiting=waiting)
    for entry in closed:
        await _publish_entry(rt, entry)
    if closed:
        log.info("queue of %s closed: %d entries", event_id, len(closed))
        await _publish_queue_changed(rt, event_id)
    return closed


async def refresh_status(rt: Runtime, *, event_id: str) -> EventStatus:
    """Store the event's sale status as of now; a sell-out closes the queue (DESIGN section 3)."""
    event = await catalog.get_event(rt.db, event_id=event_id)
    status = await catalog.refresh_event_status(rt.db, event=event)
    if status is EventStatus.SOLD_OUT and event.status is not EventStatus.SOLD_OUT:
        await close_queue(rt, event_id=event_id, cancelled=False)
    return status


async def _close_for_status(rt: Runtime, event_id: str) -> list[QueueEntry]:
    event = await catalog.find_event(rt.db, event_id=event_id)
    if event is None or event.status not in (EventStatus.SOLD_OUT, EventStatus.CANCELLED):
        return []
    return await close_queue(rt, event_id=event_id, cancelled=event.status is EventStatus.CANCELLED)


# --- from admission to checkout -------------------------------------------------


async def start_checkout(rt: Runtime, *, actor: Viewer, event_id: str) -> CheckoutSession:
    """M6: the ADMITTED buyer's ACTIVE session (the same one if asked again)."""
    user_id = require_user(actor)
    event, _ = await catalog.sale_view_of(rt.db, event_id=event_id, field="eventId")
    if event.status is EventStatus.CANCELLED:
        raise fail(ErrorCode.EVENT_CANCELLED, "the event is cancelled")
    for _ in range(5):
        entry = await _admitted_entry(rt, event, user_id)
        if entry.session_id:
            session = await checkout.get_session(rt, session_id=entry.session_id)
            if session is not None and session.is_open(now_ms()):
                return session
            await _expire_if_due(rt, entry, now_ms())
            raise fail(ErrorCode.CHECKOUT_EXPIRED, "your checkout session has expired; join the queue again")
        now = now_ms()
        expires_at = now + rt.settings.checkout_expiry_seconds * 1000
        # The session is written before the entry points at it, so whoever ends
        # the entry (leave, expiry) always finds the session to end with it.
        session = await checkout.open_session(
            rt, session_id=ObjectId(), event_id=event.id, user_id=user_id, queue_entry_id=entry.id, now=now,
            expires_at=expires_at,
        )
        attached = await repo.attach_session(rt.db, entry.id, ObjectId(session.id), expires_at)
        if attached is None:
            # A parallel request attached its own, or the entry just ended: ours never held the slot.
            await checkout.end_session(rt, session_id=session.id, status=CheckoutStatus.EXPIRED, now=now)
            continue
        await _schedule_expiry(rt, attached)
        await _publish_entry(rt, attached)
        return session
    raise fail(ErrorCode.NOT_ADMITTED, "your place changed while starting checkout; try again")


async def _admitted_entry(rt: Runtime, event: Event, user_id: str) -> QueueEntry:
    entry = await get_entry(rt, event_id=event.id, user_id=user_id)
    if entry is None or entry.status in (QueueStatus.LEFT, QueueStatus.COMPLETED):
        raise fail(ErrorCode.NOT_IN_QUEUE, "join the event's queue first")
    if entry.status is QueueStatus.CLOSED:
        raise fail(ErrorCode.SOLD_OUT, "the event sold out and its queue closed; join again if it goes back on sale")
    if entry.status is QueueStatus.EXPIRED:
        raise fail(ErrorCode.CHECKOUT_EXPIRED, "your turn to check out has passed; join the queue again")
    if entry.status is QueueStatus.WAITING:
        await admit_waiting(rt, event_id=event.id, budget=ADMIT_INLINE)
        entry = await repo.get(rt.db, event.id, user_id)
        if entry is None or entry.status is not QueueStatus.ADMITTED:
            ahead = await position(rt, entry) if entry else None
            fresh = await catalog.get_event(rt.db, event_id=event.id)
            if fresh.active_checkouts >= rt.settings.checkout_limit:
                raise fail(ErrorCode.CHECKOUT_LIMIT_REACHED, f"all checkout slots are taken; you are number {ahead} in line")
            raise fail(ErrorCode.NOT_ADMITTED, f"not your turn yet: you are number {ahead} in line")
    return entry


# --- fan-out and scheduling ------------------------------------------------------


async def _schedule_expiry(rt: Runtime, entry: QueueEntry) -> None:
    # Failing to schedule is not failing the request: the sweep is the backstop.
    try:
        await rt.scheduler.expire_at(event_id=entry.event_id, user_id=entry.user_id, at_ms=entry.expires_at_utc)
    except Exception:  # noqa: BLE001
        log.warning("could not schedule the expiry of %s; the sweep will catch it", entry.id, exc_info=True)



def entry_message(entry: QueueEntry) -> dict:
    return {"entry": entry.model_dump(by_alias=True, mode="json")}


async def _publish_entry(rt: Runtime, entry: QueueEntry) -> None:
    await rt.broker.publish(channels.entry(entry.event_id, entry.user_id), entry_message(entry))


async def _publish_queue_changed(rt: Runtime, event_id: str) -> None:
    await rt.broker.publish(channels.event(event_id), {"kind": "queue"})
