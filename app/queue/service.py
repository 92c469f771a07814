"""The virtual queue: join, leave, admission in seq order, expiry, and the start of checkout.

Every state change of an entry is one guarded write (its current status in
the filter), so of two racing requests exactly one wins.
Turns are counted on the event (app/catalog/turns.py): a join takes a seq,
with the turn and a slot if one is free and nobody waits ahead; whoever frees
a slot moves the turn on to the next waiting seq in the same write, and then
admits the entry holding that seq. No lock, no single admitter: turns go out
in seq order however many requests move them at once.

Two rules make every turn used exactly once:
- a turn given to a seq whose entry is not written yet is taken up by the
  join itself, which looks at the turns once its entry is written;
- a buyer who leaves WAITING (or expires) skips their seq; if the turn had
  already come to it, the one who ended the entry passes it on.
Expiry is enforced whenever an entry is read for a decision, and by
`expire_every_due_entry`, which the background sweep calls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from bson import ObjectId

from app import failpoints, metrics
from app.auth import Viewer, require_role, require_user
from app.catalog import service as catalog
from app.catalog import turns
from app.catalog.models import Event, EventStatus, EventTicket
from app.checkout import service as checkout
from app.checkout.models import CheckoutSession, CheckoutStatus
from app.errors import DomainError, ErrorCode, fail, not_found
from app.pubsub import CLOSING, channels
from app.queue import repository as repo
from app.queue import groups
from app.queue.groups import LOOK_AGAIN_WITHIN
from app.queue import holds, prequeue
from app.queue.models import HoldState, QueueEntry, QueueStatus
from app.queue.pace import Pace
from app.runtime import Runtime
from app.timeutil import from_ms, now_ms

log = logging.getLogger("app.queue")

SWEEP_BATCH = 500
# WAITING entries below the turns a repair looks at (stranded turns are at most CHECKOUT_LIMIT).
REPAIR_BATCH = 1000
# The stored statuses of a closed queue.
_CLOSED = (EventStatus.SOLD_OUT.value, EventStatus.CANCELLED.value)
# Turns given per request when slots are free with buyers waiting (after CHECKOUT_LIMIT was raised).
FILL_INLINE = 50


# --- reading -------------------------------------------------------------------


async def get_entry(rt: Runtime, *, event_id: str, user_id: str) -> QueueEntry | None:
    """The buyer's entry for the event (expired on the spot if its time has passed)."""
    if not ObjectId.is_valid(event_id):
        return None
    entry = await rt.entry_reads.submit(event_id, groups.Read(rt.db, user_id), groups.read_entries)
    return await _expire_entry_if_due(rt, entry, now_ms()) if entry else None


class Seen(NamedTuple):
    """An entry as its buyer is shown it: its 1-based place if it is WAITING, and about how many
    seconds it will wait for its turn at the queue's recent pace (None with no pace to go on)."""

    entry: QueueEntry
    place: int | None
    wait_seconds: int | None = None


def as_seen(entry: QueueEntry, counted: turns.Turns, pace: Pace | None = None) -> Seen:
    """The entry as its buyer should see it, given the queue's turns (and its pace): its place
    and wait if WAITING, and CLOSED already if the queue closed before its turn (the closing,
    which writes that, may take a second or two to reach it behind thousands of others)."""
    if entry.status is not QueueStatus.WAITING:
        return Seen(entry, None)
    if counted.closes(entry.seq):
        return Seen(entry.model_copy(update={"status": QueueStatus.CLOSED}), None)
    place = counted.position(entry.seq)
    return Seen(entry, place, pace.wait_seconds(place) if pace else None)


async def seen(rt: Runtime, entry: QueueEntry) -> Seen:
    """`as_seen` with the turns read now (one read, for a WAITING entry only)."""
    if entry.status is not QueueStatus.WAITING:
        return Seen(entry, None)
    counted = await turns.read(rt.db, entry.event_id)
    if counted is None:
        return Seen(entry, None)
    pace = rt.paces.of(entry.event_id)
    pace.note(counted)
    return as_seen(entry, counted, pace)


async def turns_of(rt: Runtime, *, event_id: str) -> turns.Turns:
    """The event's turn counters: every subscriber's position comes from this one read (and the
    queue's pace, noted from it)."""
    counted = await turns.read(rt.db, event_id)
    if counted is None:
        raise not_found("event", "eventId")
    rt.paces.of(event_id).note(counted)
    return counted


# --- joining and leaving -------------------------------------------------------


class Joined(NamedTuple):
    """A join's answer: the entry, and its position if it waits."""

    entry: QueueEntry
    position: int | None
    wait_seconds: int | None = None


async def join_queue(rt: Runtime, *, actor: Viewer, event_id: str) -> Joined:
    """M3: a place at the back of the queue, or the buyer's live entry unchanged."""
    user_id = require_user(actor)
    event, tickets = await catalog.sale_view_of(rt, event_id=event_id, field="eventId")
    pre_queue = prequeue.window(event, tickets)
    if pre_queue is not None and event.status is not EventStatus.CANCELLED:
        now = now_ms()
        if now < pre_queue.opens_at:
            raise fail(ErrorCode.EVENT_NOT_ON_SALE, f"the queue opens at {_iso(pre_queue.opens_at)}")
        if now < pre_queue.sale_opens_at:
            return await _join_pre_queue(rt, event.id, user_id, pre_queue)
        await draw_pre_queue(rt, event_id=event.id)  # the first join after the opening draws; the others wait
    try:
        _require_on_sale(event, tickets)
        # One write decides the place: with a free slot and nobody ahead, the buyer is ADMITTED
        # in this very answer, however many join at once (DESIGN section 3). Joins arriving
        # together share that write, and the insert of their entries (app/queue/groups.py).
        join = groups.Join(rt.db, user_id, rt.settings.checkout_limit,
                           lambda user, place: _new_entry(rt, event.id, user, place).to_doc())
        seated = await rt.joins.submit(event.id, join, groups.write_group)
        place = seated.place
        if place.closed:  # our view of the event was older than its sell-out or cancellation
            await _require_on_sale_now(rt, event.id)
            raise fail(ErrorCode.SOLD_OUT, "the event is sold out")
    except DomainError:
        # A live entry is still answered as it is, and a cooldown still said, after a sell-out.
        existing = await get_entry(rt, event_id=event.id, user_id=user_id)
        if existing is not None and existing.is_live():
            return Joined(*await seen(rt, existing))
        if existing is not None:
            _require_may_rejoin(rt, existing)
        raise
    if seated.doc is not None:  # a first join (the crowd): its entry is written
        entry = QueueEntry.from_doc(seated.doc)
    else:  # the buyer has an entry already: restart it with this place, or give the place back
        fresh = _new_entry(rt, event.id, user_id, place).to_doc()
        entry = await _join_again(rt, event.id, user_id, place,
                                  {k: fresh[k] for k in _PLACE_FIELDS if fresh[k] is not None})
        if entry.seq != place.seq:
            return Joined(*await seen(rt, entry))
    return await _placed(rt, entry, place, seated.turns_after)


# What a restarted entry takes from its new place.
_PLACE_FIELDS = ("seq", "status", "joinedAtUtc", "admittedAtUtc", "expiresAtUtc")


def _new_entry(rt: Runtime, event_id: str, user_id: str, place: turns.Place) -> QueueEntry:
    """The entry of a new place: ADMITTED if its turn came with it, else WAITING."""
    now = now_ms()
    if place.admitted:
        status, expires = QueueStatus.ADMITTED, now + rt.settings.checkout_expiry_seconds * 1000
    else:
        status, expires = QueueStatus.WAITING, now + rt.settings.queue_expiry_seconds * 1000
    return QueueEntry(_id=str(ObjectId()), eventId=event_id, userId=user_id, seq=place.seq, status=status,
                      joinedAtUtc=now, admittedAtUtc=now if place.admitted else None, expiresAtUtc=expires)


async def _join_again(rt: Runtime, event_id: str, user_id: str, place: turns.Place, fresh: dict) -> QueueEntry:
    """The buyer has an entry already: restart a finished one with the place taken, or give
    the place back and answer the live entry (or the cooldown)."""
    existing = await repo.get(rt.db, event_id, user_id)
    assert existing is not None  # entries are never deleted
    existing = await _expire_entry_if_due(rt, existing, now_ms())
    if not existing.is_live():
        try:
            _require_may_rejoin(rt, existing)
        except DomainError:
            await _give_up_place(rt, event_id, place)
            raise
        restarted = await repo.restart(rt.db, existing, fresh)
        if restarted is not None:
            return restarted
    # Live already (or another request of this buyer restarted it first): the place taken is nobody's.
    await _give_up_place(rt, event_id, place)
    winner = await repo.get(rt.db, event_id, user_id)
    assert winner is not None
    return winner


def _require_may_rejoin(rt: Runtime, existing: QueueEntry) -> None:
    """QUEUE_COOLDOWN for a buyer who left and whose cooldown runs, or who bought and whose
    cooldown after a purchase runs (QUEUE_COOLDOWN_AFTER_PURCHASE_SECONDS, 0 by default: a
    scalper looping join, checkout, buy must wait between rounds)."""
    if existing.status is QueueStatus.LEFT and (existing.cooldown_until_utc or 0) > now_ms():
        until = _iso(existing.cooldown_until_utc)
        raise fail(ErrorCode.QUEUE_COOLDOWN, f"you left this queue; you may join again from {until}")
    after_purchase = rt.settings.queue_cooldown_after_purchase_seconds * 1000
    if existing.status is QueueStatus.COMPLETED and after_purchase and existing.ended_at_utc is not None:
        until_ms = existing.ended_at_utc + after_purchase
        if until_ms > now_ms():
            raise fail(ErrorCode.QUEUE_COOLDOWN, f"you bought for this event just now; you may join again from {_iso(until_ms)}")


def _iso(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _placed(rt: Runtime, entry: QueueEntry, place: turns.Place, counted: turns.Turns | None) -> Joined:
    """The entry of a new place is written: announce it, and take up a turn that came meanwhile
    (`counted`: the turns as read after the entry was written, if its group read them)."""
    await _schedule_expiry(rt, entry)
    if place.admitted:
        metrics.ADMISSIONS.inc()
        await _announce_place(rt, entry)
        return Joined(entry, None)
    if place.ahead >= LOOK_AGAIN_WITHIN:
        await _announce_place(rt, entry)
        return _waiting(rt, entry, place.ahead + 1)
    # Our turn may have come before our entry was written: then its giver found nobody to admit.
    counted = counted or await turns_of(rt, event_id=entry.event_id)
    if counted.status in _CLOSED or counted.joined_as_it_closed(entry.seq):
        # The queue closed as we joined, before its closing could see our entry.
        await _close_straggler(rt, entry)
        await _require_on_sale_now(rt, entry.event_id)  # SOLD_OUT, unless the sale reopened since
        entry = await _current(rt, entry)
        return Joined(*await seen(rt, entry))
    if counted.has_turn(entry.seq):
        admitted = await _admit_seq(rt, entry.event_id, entry.seq, counted)
        return Joined(admitted or await _current(rt, entry), None)
    if counted.active < rt.settings.checkout_limit and counted.waiting > 0:
        # Free slots with buyers waiting (the limit was raised, or a repair freed slots).
        for changed in await fill_free_slots(rt, event_id=entry.event_id, budget=FILL_INLINE):
            if changed.id == entry.id:
                return Joined(changed, None)
    await _announce_place(rt, entry)
    return _waiting(rt, entry, counted.position(entry.seq))


def _waiting(rt: Runtime, entry: QueueEntry, place: int) -> Joined:
    """A join that waits, at `place`, with its wait at the pace this process has seen."""
    return Joined(entry, place, rt.paces.of(entry.event_id).wait_seconds(place))


async def _close_straggler(rt: Runtime, entry: QueueEntry) -> None:
    """A WAITING entry that joined as its queue closed, after the closing passed: closed too."""
    closed = await repo.transition(rt.db, entry, {"status": QueueStatus.CLOSED.value, "endedAtUtc": now_ms()})
    if closed is not None:
        await _publish_entry(rt, closed)


async def _current(rt: Runtime, entry: QueueEntry) -> QueueEntry:
    return await repo.get(rt.db, entry.event_id, entry.user_id) or entry


async def leave_queue(rt: Runtime, *, actor: Viewer, event_id: str) -> QueueEntry:
    """M4: the live entry becomes LEFT, its slot (if admitted) goes to the next buyer."""
    user_id = require_user(actor)
    event = await catalog.get_event(rt, event_id=event_id, field="eventId")
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
    if all(t.quantity_remaining == 0 for t in tickets):
        # Checkouts hold the rest: the buyers waiting already get what comes back, then the waitlist.
        raise fail(ErrorCode.SOLD_OUT, "every ticket is sold or held in a checkout; join the waitlist for any that "
                   "come back")


async def _require_on_sale_now(rt: Runtime, event_id: str) -> None:
    """As `_require_on_sale`, from the documents rather than the view."""
    catalog.forget_sale_view(event_id)
    event, tickets = await catalog.sale_view_of(rt, event_id=event_id)
    _require_on_sale(event, tickets)


# --- turns -----------------------------------------------------------------------


async def _admit_seq(rt: Runtime, event_id: str, seq: int, counted: turns.Turns) -> QueueEntry | None:
    """The turn came to `seq`: its WAITING entry becomes ADMITTED and is told (see
    `_admit_through`). The entry holding `seq`; None if no entry holds it WAITING: its join
    takes the turn up itself, or its buyer left (and whoever ended the entry passes the turn on)."""
    return next((e for e in await _admit_through(rt, event_id, seq, counted) if e.seq == seq), None)


async def _admit_through(rt: Runtime, event_id: str, seq: int, counted: turns.Turns) -> list[QueueEntry]:
    """Turns came up to `seq`: every WAITING entry holding one becomes ADMITTED in one write,
    and is told; so does any lower seq whose turn came while its join was still writing it.
    `counted`: the turns as the turns' write left them. The entries admitted, lowest first."""
    now = now_ms()
    admitted = await repo.admit_through(rt.db, event_id, seq, counted.closed_through, now,
                                        now + rt.settings.checkout_expiry_seconds * 1000)
    if admitted:
        metrics.ADMISSIONS.inc(len(admitted))
        await _schedule_expiries(rt, admitted)
        await rt.broker.publish_many([_entry_publication(e) for e in admitted] + [_queue_changed(event_id)])
    return admitted


async def _pass_turns(rt: Runtime, event_id: str, freed: int = 1, returned: int | None = None) -> list[QueueEntry]:
    """`freed` slots came free, and `returned` claimable stock (by default one ticket a slot,
    the one its turn claimed): the next waiting buyers get them (in the same write), or
    nobody waits and they are free again. The entries admitted that were written yet."""
    returned = freed if returned is None else returned
    turn = await turns.move_on(rt.db, event_id, rt.settings.checkout_limit, freed=freed, most=max(freed, returned),
                               returned=returned)
    if turn.seq is None:
        return []
    failpoints.reach("queue.turn_given")  # a crash here strands the turns: take_up_stranded_turns
    return await _admit_through(rt, event_id, turn.seq, turn.turns)


async def _give_up_place(rt: Runtime, event_id: str, place: turns.Place) -> None:
    """A join's place turned out to be nobody's: undone if it is still the last, else given up."""
    if not await turns.give_back_place(rt.db, event_id, place):
        await _give_up_turn(rt, event_id, place.seq, had_turn=place.admitted)


async def _give_up_turn(rt: Runtime, event_id: str, seq: int, *, had_turn: bool, returned: int = 1) -> None:
    """A place ends before it was used: its turn goes on (with the stock it claimed, `returned`),
    or its seq is skipped if the turn has not come."""
    if not had_turn:
        had_turn = bool(await turns.skip(rt.db, event_id, seq))
    if had_turn:
        await _pass_turns(rt, event_id, returned=returned)


async def fill_free_slots(rt: Runtime, *, event_id: str, budget: int | None = None) -> list[QueueEntry]:
    """Give turns while slots are free and buyers wait (only after the limit was raised or a
    repair freed slots: otherwise every freed slot is handed on as it is freed)."""
    admitted: list[QueueEntry] = []
    given = 0
    while budget is None or given < budget:
        most = rt.settings.checkout_limit if budget is None else budget - given
        turn = await turns.move_on(rt.db, event_id, rt.settings.checkout_limit, freed=0, most=most)
        if turn.seq is None:
            break
        given += turn.given
        admitted += await _admit_through(rt, event_id, turn.seq, turn.turns)
    return admitted


# A turn is taken up within a second or two of its giving; past this, the sweep stops looking.
STRANDED_LOOKBACK_MS = 60_000


async def take_up_stranded_turns(rt: Runtime) -> int:
    """Admit WAITING buyers whose turn was given by a process that died before admitting
    them, or came while their join was writing its entry far back in the queue; how many.
    In a queue that closed, close the entries that joined as it closed. Looks only at
    queues whose turns moved in the last minute."""
    admitted = 0
    for event_id, counted in (await turns.recently_moved(rt.db, now_ms() - STRANDED_LOOKBACK_MS)).items():
        if counted.status in _CLOSED:
            if await repo.waiting_through(rt.db, event_id, counted.next_seq, limit=1):
                await close_queue(rt, event_id=event_id, cancelled=counted.status == EventStatus.CANCELLED.value)
            continue
        if counted.through == 0:
            continue
        for entry in await repo.waiting_through(rt.db, event_id, counted.through):
            if counted.joined_as_it_closed(entry.seq):  # the sale reopened before its closing reached it
                await _close_straggler(rt, entry)
            elif counted.has_turn(entry.seq) and await _admit_seq(rt, event_id, entry.seq, counted) is not None:
                log.warning("admitted %s, whose turn was given by a process that stopped before admitting it", entry.id)
                admitted += 1
    return admitted


async def recount_slots(rt: Runtime, *, event_id: str, settle_seconds: float) -> tuple[int, int] | None:
    """Repair: set activeCheckouts to the slots the entries hold; (was, now) if it changed.

    A slot is held by every ADMITTED entry, and by every WAITING one whose turn
    came (its admission is on its way, or its giver died before it: the next
    admission takes it up). Only if both numbers stay put for `settle_seconds`
    (a turn given to a join still in flight holds a slot before its entry is
    written). None: nothing done.
    """
    event = await catalog.get_event(rt, event_id=event_id)
    counted = await _slots_held(rt, event_id)
    held = event.active_checkouts
    expected = 0 if event.status is EventStatus.CANCELLED else counted
    if expected == held:
        return None
    await asyncio.sleep(settle_seconds)
    again = await catalog.get_event(rt, event_id=event_id)
    if again.active_checkouts != held or await _slots_held(rt, event_id) != counted:
        return None
    if not await catalog.correct_active_checkouts(rt, event_id=event_id, seen=held, value=expected):
        return None
    if expected < held:
        await fill_free_slots(rt, event_id=event_id)  # buyers waiting behind the slots that leaked
    return held, expected


async def recount_claimable(rt: Runtime, *, event_id: str, unclaimed: int, settle_seconds: float) -> tuple[int | None, int] | None:
    """Repair: set claimableStock to the `unclaimed` stock (neither sold nor held) less a ticket
    for each buyer whose turn came and who holds nothing; (was, now) if it changed. Only if
    the claims and the counter stay put for `settle_seconds`. None: nothing done."""
    event = await catalog.get_event(rt, event_id=event_id)
    expected = unclaimed - await _claims(rt, event_id)
    seen = event.claimable_stock
    if expected == seen:
        return None
    await asyncio.sleep(settle_seconds)
    again = await catalog.get_event(rt, event_id=event_id)
    if again.claimable_stock != seen or unclaimed - await _claims(rt, event_id) != expected:
        return None
    if not await catalog.correct_claimable_stock(rt, event_id=event_id, seen=seen, value=expected):
        return None
    if expected > (seen or 0):
        await fill_free_slots(rt, event_id=event_id)  # buyers waiting for stock that was there
    return seen, expected


async def _claims(rt: Runtime, event_id: str) -> int:
    """Buyers whose turn came and who hold nothing: a ticket each is theirs to claim."""
    counted = await turns_of(rt, event_id=event_id)
    admitted = sum(1 for e in await repo.admitted(rt.db, event_id) if e.hold_state is None)
    waiting = await repo.waiting_through(rt.db, event_id, counted.through, limit=REPAIR_BATCH)
    return admitted + sum(1 for e in waiting if counted.has_turn(e.seq))


async def _slots_held(rt: Runtime, event_id: str) -> int:
    counted = await turns_of(rt, event_id=event_id)
    admitted = await repo.count(rt.db, event_id, QueueStatus.ADMITTED)
    waiting = await repo.waiting_through(rt.db, event_id, counted.through, limit=REPAIR_BATCH)
    return admitted + sum(1 for e in waiting if counted.has_turn(e.seq))


async def skip_lost_seqs(rt: Runtime, *, event_id: str, settle_seconds: float) -> list[int]:
    """Repair: skip the seqs whose join died before writing its entry (they would hold a
    place in everyone's position, and waste a turn); the seqs skipped.

    Only if the turns stay put for `settle_seconds`: a join in flight has taken
    its seq and not yet written its entry.
    """
    seen = await turns_of(rt, event_id=event_id)
    lost = await _lost_seqs(rt, event_id, seen)
    if not lost:
        return []
    await asyncio.sleep(settle_seconds)
    again = await turns_of(rt, event_id=event_id)
    if again != seen or await _lost_seqs(rt, event_id, again) != lost:
        return []
    return lost if await turns.skip_lost(rt.db, event_id, seen, lost) else []


async def _lost_seqs(rt: Runtime, event_id: str, counted: turns.Turns) -> list[int]:
    held = await repo.seqs_above(rt.db, event_id, counted.through)
    skipped = set(counted.skipped)
    return [s for s in range(counted.through + 1, counted.next_seq + 1) if s not in held and s not in skipped]


# --- the pre-queue (app/queue/prequeue.py) -------------------------------------------


async def _join_pre_queue(rt: Runtime, event_id: str, user_id: str, window: prequeue.Window) -> Joined:
    """A join in the pre-queue window: a PRE_QUEUE entry with no seq, whatever the moment."""
    fresh = QueueEntry(_id=str(ObjectId()), eventId=event_id, userId=user_id, seq=0, status=QueueStatus.PRE_QUEUE,
                       joinedAtUtc=now_ms(), expiresAtUtc=window.sale_opens_at + rt.settings.queue_expiry_seconds * 1000)
    if (await repo.insert_new(rt.db, [fresh.to_doc()]))[0]:
        entry = fresh
    else:
        existing = await repo.get(rt.db, event_id, user_id)
        assert existing is not None  # entries are never deleted
        existing = await _expire_entry_if_due(rt, existing, now_ms())
        if existing.is_live():
            return Joined(*await seen(rt, existing))
        _require_may_rejoin(rt, existing)
        doc = fresh.to_doc()
        entry = await repo.restart(rt.db, existing, {k: doc[k] for k in _PLACE_FIELDS if doc[k] is not None})
        if entry is None:  # another request of this buyer restarted it first
            return Joined(*await seen(rt, await _current(rt, existing)))
    draw = await prequeue.get_draw(rt, event_id)
    if draw is not None and draw.state == "DRAWN":  # written as the draw finished: to the back
        return await _to_back(rt, entry) or Joined(entry, None)
    await _announce_place(rt, entry)
    return Joined(entry, None)


async def draw_pre_queue(rt: Runtime, *, event_id: str, seed: int | None = None) -> bool:
    """Draw the order of the event's pre-queued buyers, if its sale has opened and nobody drew
    it yet (or wait for the process drawing it); whether this call drew it. `seed`: for tests."""
    draw = await prequeue.claim(rt, event_id, seed)
    if draw is None:
        done = await prequeue.get_draw(rt, event_id)
        if done is not None and done.state != "DRAWN":
            await prequeue.wait_until_drawn(rt, event_id)
        return False
    draw = await prequeue.fix_entries(rt, draw)
    seated = await prequeue.fix_seqs(rt, draw)
    now = now_ms()
    if seated is None:  # the queue closed before its opening (cancelled): so do the pre-queued places
        await repo.close_pre_queue(rt.db, event_id, now)
        await prequeue.mark_drawn(rt, draw)
        return True
    admitted = 0
    for chunk in prequeue.chunks(prequeue.seats(seated) if seated.entry_ids else []):
        written = await prequeue.write_seats(rt, chunk, now)
        for entry_id, seq, had_turn in chunk:
            if entry_id not in written and not await repo.holds_seq(rt.db, entry_id, seq):
                await _give_up_turn(rt, event_id, seq, had_turn=had_turn)  # its buyer left before the draw
        entries = await repo.by_ids(rt.db, sorted(written))
        admitted += sum(1 for e in entries if e.status is QueueStatus.ADMITTED)
        await _schedule_expiries(rt, entries)
        await rt.broker.publish_many([_entry_publication(e) for e in entries])
    metrics.ADMISSIONS.inc(admitted)
    await prequeue.mark_drawn(rt, seated)
    await _publish_queue_changed(rt, event_id)
    log.info("pre-queue of %s drawn: %d entries, seed %d", event_id, len(seated.entry_ids), seated.seed)
    await settle_stragglers(rt, event_id=event_id)
    return True


async def settle_stragglers(rt: Runtime, *, event_id: str) -> int:
    """PRE_QUEUE entries of a drawn event (joins that wrote as the draw finished): each goes to
    the back of the queue; how many."""
    moved = 0
    for entry in await repo.in_status(rt.db, event_id, QueueStatus.PRE_QUEUE):
        moved += await _to_back(rt, entry) is not None
    return moved


async def _to_back(rt: Runtime, entry: QueueEntry) -> Joined | None:
    """A PRE_QUEUE entry after the draw takes the next place at the back; None if it ended meanwhile."""
    place = await turns.take_place(rt.db, entry.event_id, rt.settings.checkout_limit)
    if place is None:
        return None
    if place.closed:
        await _close_straggler(rt, entry)
        return None
    doc = _new_entry(rt, entry.event_id, entry.user_id, place).to_doc()
    placed = await repo.transition(rt.db, entry, {k: doc[k] for k in _PLACE_FIELDS})
    if placed is None:  # the buyer left meanwhile: the place is nobody's
        await _give_up_place(rt, entry.event_id, place)
        return None
    return await _placed(rt, placed, place, None)


# How far back the sweep looks for sales that opened: a draw is due at the opening, and a draw
# whose process died is taken over within STALE_DRAW_MS.
DRAW_LOOKBACK_MS = 10 * 60_000


async def draw_where_due(rt: Runtime) -> int:
    """The sweep's backstop: draw every pre-queue whose sale opened in the last minutes, and
    send late PRE_QUEUE entries of drawn ones to the back; how many draws this made. Found by
    the sale windows' instants (indexed), never by a look at every queue entry."""
    drawn = 0
    now = now_ms()
    for event_id in await catalog.events_with_window_edges(rt, since=now - DRAW_LOOKBACK_MS, until=now):
        event, tickets = await catalog.sale_view_of(rt, event_id=event_id)
        if event.queue_opens_minutes_before is None:
            continue
        window = prequeue.window(event, tickets)
        if window is not None and now_ms() >= window.sale_opens_at:
            drawn += await draw_pre_queue(rt, event_id=event_id)
        elif window is None:
            await settle_stragglers(rt, event_id=event_id)
    return drawn


async def draw_record(rt: Runtime, *, actor: Viewer, event_id: str) -> prequeue.Draw | None:
    """The event's draw, for its organizer or an admin (support's proof of a fair order)."""
    require_role(actor, "organizer")
    event = await catalog.get_event(rt, event_id=event_id, field="eventId")
    if actor.user_id != event.organizer_id and "admin" not in actor.roles:
        raise fail(ErrorCode.FORBIDDEN, "only the event's organizer or an admin may read its draw")
    return await prequeue.get_draw(rt, event.id)


async def sample_queue_lengths(rt: Runtime) -> None:
    """Set the WAITING / ADMITTED gauges of /metrics from the database."""
    metrics.QUEUE_WAITING.set(await repo.count_all(rt.db, QueueStatus.WAITING))
    metrics.QUEUE_ADMITTED.set(await repo.count_all(rt.db, QueueStatus.ADMITTED))


async def admit_where_possible(rt: Runtime) -> int:
    """Backstop for the sweep: on every event with buyers waiting, give them the free slots,
    or close them out if the queue closed (a join that died after writing its entry)."""
    await draw_where_due(rt)
    admitted = 0
    for event_id in await repo.events_with(rt.db, QueueStatus.WAITING):
        counted = await turns_of(rt, event_id=event_id)
        if counted.status in _CLOSED:
            await close_queue(rt, event_id=event_id, cancelled=counted.status == EventStatus.CANCELLED.value)
        else:
            admitted += len(await fill_free_slots(rt, event_id=event_id))
    return admitted


# --- ending an admission -----------------------------------------------------------


async def end_admission(rt: Runtime, entry: QueueEntry, to: QueueStatus, now: int) -> QueueEntry | None:
    """End a live entry as EXPIRED or LEFT; None if another request ended it first. (A
    purchase completes its entry with others, in `complete_admissions`.)

    An ADMITTED entry ends its checkout session, gives back the stock it holds,
    and hands its slot to the next WAITING buyer; a WAITING one gives up its seq.
    """
    changes: dict = {"status": to.value, "endedAtUtc": now}
    if to is QueueStatus.LEFT:
        changes["cooldownUntilUtc"] = now + rt.settings.queue_cooldown_seconds * 1000
    # Guarded on the session too: a checkout started since we read the entry must not be orphaned;
    # and on the hold: stock its purchase bought meanwhile is not given back.
    guard: dict = {"sessionId": ObjectId(entry.session_id) if entry.session_id else None}
    if entry.holds:
        changes["holdState"], guard["holdState"] = HoldState.RETURNED.value, HoldState.HELD.value
    ended = await repo.transition(rt.db, entry, changes, guard)
    if ended is None:
        return None
    if entry.status is QueueStatus.PRE_QUEUE:  # no place was drawn for it: nothing to give up
        await _publish_entry(rt, ended)
        return ended
    if to is QueueStatus.EXPIRED:
        metrics.EXPIRIES.inc()
    if entry.session_id:  # a session left unused ends EXPIRED
        await checkout.end_sessions(rt, entries=[entry], status=CheckoutStatus.EXPIRED, now=now)
    if entry.holds:  # before the turn goes on: the next buyer finds the stock back
        await holds.give_back(rt, entry.event_id, entry.held_items or [], offered=entry.offer_of is not None)
    await _publish_entry(rt, ended)
    await _give_up_turn(rt, entry.event_id, entry.seq, had_turn=entry.status is QueueStatus.ADMITTED,
                        returned=entry.claim)
    await _publish_queue_changed(rt, entry.event_id)
    return ended


class Completion(NamedTuple):
    """A purchase's claim on its admission: the buyer, the session that bought, the entry as
    the purchase read it (None: read it here), the tickets it bought, and whether they were
    the checkout's hold."""

    user_id: str
    session_id: str
    entry: QueueEntry | None = None
    quantity: int = 1
    from_hold: bool = False

    @property
    def returned(self) -> int:
        """The claimable stock this completion gives back: the ticket its turn claimed, less
        what it bought (a hold had claimed its stock when taken)."""
        return 0 if self.from_hold else 1 - self.quantity


async def complete_admissions(rt: Runtime, *, event_id: str, completions: list[Completion]) -> int:
    """After purchases of the event: the entry of each session becomes COMPLETED, and the
    slots they free go on to the next buyers, one write for each step whatever the count.
    How many entries this call completed (another caller may have completed the rest)."""
    pending = list(completions)
    completed = 0
    for attempt in range(2):  # a copy passed in may be stale: then look once more
        unread = [c.user_id for c in pending if c.entry is None or attempt]
        fresh = await repo.get_many(rt.db, event_id, unread) if unread else {}
        claims = [(c, fresh.get(c.user_id) if c.entry is None or attempt else c.entry) for c in pending]
        claims = [(c, e) for c, e in claims
                  if e is not None and e.status is QueueStatus.ADMITTED and e.session_id == c.session_id]
        if not claims:
            return completed
        now = now_ms()
        ended = await repo.complete_many(rt.db, [e for _, e in claims], now)
        completed += len(ended)
        if ended:
            await checkout.end_sessions(rt, entries=ended, status=CheckoutStatus.COMPLETED, now=now)
            await rt.broker.publish_many([
                (channels.entry(e.event_id, e.user_id),
                 entry_message(e.model_copy(update={"status": QueueStatus.COMPLETED, "ended_at_utc": now})))
                for e in ended])
            done = {e.id for e in ended}
            returned = {e.id: c.returned for c, e in claims if e.id in done}  # each entry once
            await _pass_turns(rt, event_id, freed=len(ended), returned=sum(returned.values()))
            await _publish_queue_changed(rt, event_id)
        done = {e.id for e in ended}
        pending = [c for c, e in claims if e.id not in done]
        if not pending:
            return completed
    return completed


async def open_checkouts(rt: Runtime, *, event_id: str) -> list[QueueEntry]:
    """The event's ADMITTED entries that started a checkout: its ACTIVE sessions."""
    return [e for e in await repo.admitted(rt.db, event_id) if e.session_id is not None]


async def _expire_entry_if_due(rt: Runtime, entry: QueueEntry, now: int) -> QueueEntry:
    """This entry, as read for a decision, after expiring it (and its session) if its time has passed."""
    if entry.is_live() and entry.expires_at_utc <= now:
        await end_admission(rt, entry, QueueStatus.EXPIRED, now)
        return await repo.get(rt.db, entry.event_id, entry.user_id) or entry
    return entry


async def expire_every_due_entry(rt: Runtime, *, now: int | None = None, event_id: str | None = None) -> int:
    """The sweep: expire every live entry (and its session) whose time has passed; how many."""
    now = now or now_ms()
    expired = 0
    while True:
        batch = await repo.due(rt.db, now, SWEEP_BATCH, event_id)
        for entry in batch:
            if await end_admission(rt, entry, QueueStatus.EXPIRED, now) is not None:
                expired += 1
        if len(batch) < SWEEP_BATCH:
            return expired


async def sweep(rt: Runtime, *, admit: bool = True) -> int:
    """One round of the sweep, whoever runs it (the worker's cron job, or an API process while
    no worker is alive): expire what is due, and, if `admit`, admit wherever buyers wait (after
    an admitter crashed, nobody else would) and sample the queues' lengths. How many expired."""
    expired = await expire_every_due_entry(rt)
    if expired:
        log.info("expired %d queue entries", expired)
    if admit:
        await admit_where_possible(rt)
        await sample_queue_lengths(rt)
    return expired


async def close_queue(rt: Runtime, *, event_id: str, cancelled: bool) -> list[QueueEntry]:
    """The queue closes: nobody waits for a ticket that no longer exists; the entries closed.

    At a sell-out, WAITING buyers and ADMITTED ones who started no checkout
    become CLOSED and their slots are freed; buyers in an ACTIVE session keep
    it until it ends. At a cancellation every live entry closes and every
    ACTIVE session ends (the event already holds no slots). Called once the
    event's status says so, so no turn is given after the counters are read.
    """
    if cancelled:
        await _announce_closing(rt, event_id)
    now = now_ms()
    counted = await turns_of(rt, event_id=event_id)
    closed: list[QueueEntry] = []
    async for chunk in repo.close(rt.db, event_id, now, keep_checkouts=not cancelled):
        await rt.broker.publish_many([(channels.entry(e.event_id, e.user_id), entry_message(e)) for e in chunk])
        closed += chunk
    if cancelled:  # every session closes with its entry, and the pre-queue with the rest
        await checkout.end_sessions(rt, entries=closed, status=CheckoutStatus.EXPIRED, now=now)
        await repo.close_pre_queue(rt.db, event_id, now)
    # A slot is held by every ADMITTED entry closed, and by a WAITING one whose turn had come
    # (its admission was on its way).
    slots = sum(1 for e in closed if e.admitted_at_utc is not None or counted.has_turn(e.seq))
    await turns.close(rt.db, event_id, slots=slots)
    if closed:
        log.info("queue of %s closed: %d entries", event_id, len(closed))
        await _publish_queue_changed(rt, event_id)
    return closed


async def refresh_status(rt: Runtime, *, event_id: str, wait_for_closing: bool = True) -> EventStatus:
    """Store the event's sale status as of now; a sell-out closes the queue (DESIGN section 3).

    Once the status is stored no turn is given, so the closing itself may run after
    the caller is answered (`wait_for_closing=False`): a sale's last purchases do not
    wait for thousands of entries to close. Should this process die first, the sweep
    closes what is left (`take_up_stranded_turns`).
    """
    event = await catalog.get_event(rt, event_id=event_id)
    if event.queue_opens_minutes_before is not None and event.queue_drawn_at_utc is None:
        window = prequeue.window(event, await catalog.ticket_types_of_event(rt, event_id=event_id))
        if window is not None and now_ms() >= window.sale_opens_at:  # the job at the sale's opening draws
            await draw_pre_queue(rt, event_id=event_id)
    status = await catalog.refresh_event_status(rt, event=event)
    if status is EventStatus.SOLD_OUT and event.status is not EventStatus.SOLD_OUT:
        await _announce_closing(rt, event_id)
        if wait_for_closing:
            await close_queue(rt, event_id=event_id, cancelled=False)
        else:
            rt.closings.post(event_id, rt, _close_sold_out)
    return status


async def _close_sold_out(event_id: str, asks: list[Runtime]) -> list[None]:
    await close_queue(asks[0], event_id=event_id, cancelled=False)  # once for every ask of the batch
    return [None] * len(asks)


# --- from admission to checkout -------------------------------------------------


async def start_checkout(rt: Runtime, *, actor: Viewer, event_id: str, hold: holds.Hold | None = None) -> CheckoutSession:
    """M6: the ADMITTED buyer's ACTIVE session (the same one if asked again), holding the
    stock of `hold` (checked already against the sale's rules) if given."""
    user_id = require_user(actor)
    event, _ = await catalog.sale_view_of(rt, event_id=event_id, field="eventId")
    if event.status is EventStatus.CANCELLED:
        raise fail(ErrorCode.EVENT_CANCELLED, "the event is cancelled")
    for _ in range(5):
        entry = await _admitted_entry(rt, event, user_id)
        now = now_ms()
        if entry.session_id:
            if entry.expires_at_utc > now:
                if hold is not None and not hold.same_as(entry.held_items):
                    raise fail(ErrorCode.VALIDATION, "your checkout has started already, with what it holds; "
                               "buy that, or leave the queue and join again", hold.field)
                return checkout.active_session(entry)
            await _expire_entry_if_due(rt, entry, now)
            raise fail(ErrorCode.CHECKOUT_EXPIRED, "your checkout session has expired; join the queue again")
        if hold is not None:
            await _take_hold(rt, event.id, hold)
        # One guarded write to the entry starts the session, with its hold (app/checkout/service.py).
        attach = repo.Attach(entry, ObjectId(), now, now + rt.settings.checkout_expiry_seconds * 1000,
                             hold.items if hold else None)
        attached = await rt.checkout_starts.submit(event.id, groups.CheckoutStart(rt.db, attach), groups.attach_sessions)
        if attached is not None:
            await _schedule_expiry(rt, attached)
            await _publish_entry(rt, attached)
            return checkout.active_session(attached)
        if hold is not None:  # the entry ended (or started another checkout) meanwhile: nobody holds it
            await holds.give_back(rt, event.id, hold.items)
            if holds.total(hold.items) > 1:
                await _pass_turns(rt, event.id, freed=0, returned=holds.total(hold.items) - 1)
    raise fail(ErrorCode.NOT_ADMITTED, "your place changed while starting checkout; try again")


async def _take_hold(rt: Runtime, event_id: str, hold: holds.Hold) -> None:
    """Take a hold's stock: beyond the ticket the buyer's turn claimed, only what no other
    admitted buyer needs (claimableStock); then each type's stock."""
    extra = holds.total(hold.items) - 1
    if extra and not await turns.claim(rt.db, event_id, extra):
        event = await catalog.get_event(rt, event_id=event_id)
        most = max(1, (event.claimable_stock or 0) + 1)
        raise fail(ErrorCode.INSUFFICIENT_INVENTORY, f"the other buyers admitted need a ticket each: you may hold "
                   f"{most} now; nothing was held", hold.field)
    try:
        await holds.take(rt, event_id, hold)
    except DomainError:
        if extra:
            await _pass_turns(rt, event_id, freed=0, returned=extra)
        raise


async def offer_admission(rt: Runtime, *, event_id: str, user_id: str, hold: holds.Hold, offer_id: str,
                          expires_at: int) -> QueueEntry | None:
    """A waitlist offer: the buyer is ADMITTED, with a checkout already holding `hold` (its stock
    taken) until `expires_at`, and told on their queueUpdates. None, and nothing written, if
    buyers wait in the queue (they come first) or this buyer has a live entry."""
    existing = await repo.get(rt.db, event_id, user_id)
    if existing is not None and existing.is_live():
        return None
    seq = await turns.seat_offer(rt.db, event_id, holds.total(hold.items))
    if seq is None:
        return None
    now = now_ms()
    fresh = {"seq": seq, "status": QueueStatus.ADMITTED.value, "joinedAtUtc": now, "admittedAtUtc": now,
             "expiresAtUtc": expires_at, "sessionId": ObjectId(), "checkoutStartedAtUtc": now,
             "heldItems": [i.model_dump(by_alias=True) for i in hold.items], "holdState": HoldState.HELD.value,
             "offerOf": offer_id}
    if existing is None:
        doc = {"_id": ObjectId(), "eventId": ObjectId(event_id), "userId": user_id, **fresh}
        entry = QueueEntry.from_doc(doc) if (await repo.insert_new(rt.db, [doc]))[0] else None
    else:
        entry = await repo.restart(rt.db, existing, fresh)
    if entry is None:  # the buyer joined the queue meanwhile: the place is nobody's
        await _give_up_turn(rt, event_id, seq, had_turn=True, returned=holds.total(hold.items))
        return None
    await _schedule_expiry(rt, entry)
    await _announce_place(rt, entry)
    return entry


async def buy_hold(rt: Runtime, *, entry: QueueEntry, order_id: str, totals: dict[str, int]) -> bool | None:
    """The stock the entry's checkout holds goes to this order, together with the other
    purchases of the event at that moment; whether a type may have sold out with it, or None
    if the checkout ended (and gave it back) or another order bought it first. `totals`: the
    quantityTotal of each type held."""
    return await rt.hold_purchases.submit(entry.event_id, holds.Buy(rt, entry, order_id, totals), holds.buy_together)


async def hold_bought_by(rt: Runtime, *, event_id: str, user_id: str, order_id: str) -> bool:
    """Did this order of the buyer's buy their checkout's hold (so its stock is taken)?"""
    return await repo.hold_bought_by(rt.db, event_id, user_id, order_id)


async def live_holds(rt: Runtime, *, event_id: str) -> list[QueueEntry]:
    """The event's live checkouts that hold stock not yet bought."""
    return await repo.live_holds(rt.db, event_id)


async def _admitted_entry(rt: Runtime, event: Event, user_id: str) -> QueueEntry:
    """The buyer's entry, if it is ADMITTED; else the error that says why not."""
    entry = await get_entry(rt, event_id=event.id, user_id=user_id)
    if entry is None or entry.status in (QueueStatus.LEFT, QueueStatus.COMPLETED):
        raise fail(ErrorCode.NOT_IN_QUEUE, "join the event's queue first")
    if entry.status is QueueStatus.CLOSED:
        raise fail(ErrorCode.SOLD_OUT, "the event sold out and its queue closed; join again if it goes back on sale")
    if entry.status is QueueStatus.EXPIRED:
        raise fail(ErrorCode.CHECKOUT_EXPIRED, "your turn to check out has passed; join the queue again")
    if entry.status is QueueStatus.WAITING:
        counted = await turns_of(rt, event_id=event.id)
        ahead = counted.position(entry.seq)
        if counted.active >= rt.settings.checkout_limit:
            raise fail(ErrorCode.CHECKOUT_LIMIT_REACHED, f"all checkout slots are taken; you are number {ahead} in line")
        raise fail(ErrorCode.NOT_ADMITTED, f"not your turn yet: you are number {ahead} in line")
    return entry


# --- fan-out and scheduling ------------------------------------------------------


async def _schedule_expiry(rt: Runtime, entry: QueueEntry) -> None:
    await _schedule_expiries(rt, [entry])


async def _schedule_expiries(rt: Runtime, entries: list[QueueEntry]) -> None:
    """The expiry jobs of these entries: one per event and instant (a group shares one)."""
    for event_id, at_ms in sorted({(e.event_id, e.expires_at_utc) for e in entries}):
        # Failing to schedule is not failing the request: the sweep is the backstop.
        try:
            await rt.scheduler.expire_at(event_id=event_id, at_ms=at_ms)
        except Exception:  # noqa: BLE001
            log.warning("could not schedule the expiry of %s at %s; the sweep will catch it", event_id, at_ms,
                        exc_info=True)


def entry_message(entry: QueueEntry) -> dict:
    return {"entry": entry.model_dump(by_alias=True, mode="json")}


async def _publish_entry(rt: Runtime, entry: QueueEntry) -> None:
    await rt.broker.publish(*_entry_publication(entry))


async def _announce_place(rt: Runtime, entry: QueueEntry) -> None:
    """Tell the buyer of its entry, and the event's subscribers that the queue changed (one round trip)."""
    await rt.broker.publish_many([_entry_publication(entry), _queue_changed(entry.event_id)])


def _entry_publication(entry: QueueEntry) -> tuple[str, dict]:
    return channels.entry(entry.event_id, entry.user_id), entry_message(entry)


def _queue_changed(event_id: str) -> tuple[str, dict]:
    return channels.event(event_id), {"kind": "queue"}


async def _announce_closing(rt: Runtime, event_id: str) -> None:
    # Every waiting subscriber hears it now (`as_seen`), not when the closing reaches them.
    await rt.broker.publish(channels.event(event_id), CLOSING)


async def _publish_queue_changed(rt: Runtime, event_id: str) -> None:
    await rt.broker.publish(*_queue_changed(event_id))
