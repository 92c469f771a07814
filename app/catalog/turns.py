"""The queue's turns, counted on the event document: one guarded write per step, no lock.

The event holds four numbers for its queue (DESIGN section 3):
- `nextQueueSeq`: the last seq handed out; a join takes the next one;
- `admittedThrough`: every seq up to here has had its turn (a checkout slot),
  or its buyer left before it came;
- `skippedSeqs`: seqs above `admittedThrough` whose buyers left (or expired)
  before their turn, ascending;
- `activeCheckouts`: the slots held, by turns given and not yet ended;
- `closedThrough`: the last seq handed out when the queue last closed. A seq
  up to it that is still WAITING joined as the queue closed: it holds no slot,
  and is closed rather than admitted, even if the sale reopens;
- `claimableStock`: the tickets an admission may still claim: unsold, unheld
  stock less one for every buyer whose turn came and who holds nothing yet.
  A turn is given only while it is positive, so every admitted buyer has a
  ticket to hold (null on events from before holds: no limit).

The buyers still waiting are the seqs in (admittedThrough, nextQueueSeq]
that are not skipped. Admission is moving `admittedThrough` on to the next of
them, in the same write that takes (or hands over) the slot, so turns go out
in seq order whoever moves it and however many move it at once. A position
is computed from the event alone (`Turns.position`).

Each write is a pipeline update whose one `$set` stage reads the document as
it was before the write. What the write decided (the seq taken, the turn
given) is written too, into a short log under a token of the writer's, and
read back by `_id` (see `_write` for why not `find_one_and_update`).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, NamedTuple

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from app.catalog.models import Event, EventStatus
from app.timeutil import now_ms

# A sold-out or cancelled event gives nobody a turn: its queue closes instead.
_CLOSED = {"$in": ["$status", [EventStatus.CANCELLED.value, EventStatus.SOLD_OUT.value]]}
_CLOSED_STATUSES = frozenset({EventStatus.CANCELLED.value, EventStatus.SOLD_OUT.value})
_NEXT = {"$ifNull": ["$nextQueueSeq", 0]}
_THROUGH = {"$ifNull": ["$admittedThrough", 0]}
_SKIPPED = {"$ifNull": ["$skippedSeqs", []]}
_ACTIVE = {"$ifNull": ["$activeCheckouts", 0]}
# Null (never counted) stays null through `$add` and `$subtract`, and `$min` passes over it: no limit.
_CLAIMABLE = {"$ifNull": ["$claimableStock", None]}
_FIELDS = {"nextQueueSeq": 1, "admittedThrough": 1, "skippedSeqs": 1, "activeCheckouts": 1, "closedThrough": 1,
           "status": 1}


class Turns(NamedTuple):
    """The queue's counters as one write left them (or as read)."""

    next_seq: int
    through: int
    skipped: tuple[int, ...]
    active: int
    status: str | None
    closed_through: int = 0

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Turns:
        return cls(doc.get("nextQueueSeq", 0), doc.get("admittedThrough", 0), tuple(doc.get("skippedSeqs") or ()),
                   doc.get("activeCheckouts", 0), doc.get("status"), doc.get("closedThrough", 0))

    @classmethod
    def of_event(cls, event: Event) -> Turns:
        return cls(event.next_queue_seq, event.admitted_through, tuple(event.skipped_seqs), event.active_checkouts,
                   event.status.value, event.closed_through)

    @property
    def waiting(self) -> int:
        """Seqs handed out that have had no turn and were not given up (joins in flight included)."""
        return max(0, self.next_seq - self.through - len(self.skipped))

    def has_turn(self, seq: int) -> bool:
        """Was this seq given its turn (a slot), rather than skipped, still waiting, or joined
        as the queue closed?"""
        return self.closed_through < seq <= self.through and seq not in self.skipped

    def closes(self, seq: int) -> bool:
        """Will a WAITING seq be closed? Yes once the queue closed (sold out or cancelled) if it
        never had its turn: no turn is given after that, and the closing closes every WAITING
        entry, even if the sale reopens before it gets there. Yes too if it joined as the
        queue last closed."""
        return self.joined_as_it_closed(seq) or (self.status in _CLOSED_STATUSES and not self.has_turn(seq))

    def joined_as_it_closed(self, seq: int) -> bool:
        """A seq handed out before the queue's last closing: if still WAITING, it is to be closed."""
        return seq <= self.closed_through

    def position(self, seq: int) -> int:
        """1-based place of a waiting seq: the live seqs before it, plus one (1 once its turn
        has come and its admission is on the way)."""
        return max(1, seq - self.through - bisect_left(self.skipped, seq))


class Place(NamedTuple):
    """A join's place: its seq, whether a slot came with it, or no place as the queue is closed;
    and how many seqs waited ahead of it when it was taken."""

    seq: int
    admitted: bool
    closed: bool
    ahead: int = 0


class Turn(NamedTuple):
    """What moving the turns did: the last seq given a turn (None: none), the counters after
    it, and how many turns it gave (the live seqs in (turns before, seq])."""

    seq: int | None
    turns: Turns
    given: int = 0


async def read(db: AsyncDatabase, event_id: str) -> Turns | None:
    doc = await db.events.find_one({"_id": ObjectId(event_id)}, projection=_FIELDS)
    return Turns.of(doc) if doc else None


async def recently_moved(db: AsyncDatabase, since: int) -> dict[str, Turns]:
    """The turns of every event whose queue counters were written after `since`."""
    cursor = db.events.find({"queueActivityAtUtc": {"$gt": since}}, projection=_FIELDS)
    return {str(d["_id"]): Turns.of(d) async for d in cursor}


async def take_place(db: AsyncDatabase, event_id: str, limit: int) -> Place | None:
    """The next seq, with a slot and the turn if one is free and nobody waits (or joins)
    ahead; None if the event does not exist."""
    places = await take_places(db, event_id, limit, 1)
    return None if places is None else places[0]


async def take_places(db: AsyncDatabase, event_id: str, limit: int, count: int) -> list[Place] | None:
    """The next `count` seqs for joins that arrived together, in one write: if nobody waits
    (or joins) ahead, the first of them take the free slots and their turns; None if the
    event does not exist."""
    closed = _CLOSED
    waiting = {"$subtract": [_NEXT, {"$add": [_THROUGH, {"$size": _SKIPPED}]}]}
    # Turns given with these places: every free slot, up to `count`, if nobody waits.
    given = {"$cond": [{"$or": [closed, {"$ne": [waiting, 0]}]}, 0,
                       {"$max": [0, {"$min": [count, {"$subtract": [limit, _ACTIVE]}, _CLAIMABLE]}]}]}
    first = {"$add": [_NEXT, 1]}
    written = await _write(db, event_id, {
        "nextQueueSeq": {"$cond": [closed, _NEXT, {"$add": [_NEXT, count]}]},
        # Nobody waits: every seq up to nextQueueSeq was given its turn or skipped.
        "admittedThrough": {"$cond": [{"$gt": [given, 0]}, {"$add": [_NEXT, given]}, _THROUGH]},
        "skippedSeqs": {"$cond": [{"$gt": [given, 0]}, [], _SKIPPED]},
        "activeCheckouts": {"$add": [_ACTIVE, given]},
        "claimableStock": {"$subtract": [_CLAIMABLE, given]},
    }, {"s": first, "g": given, "c": closed, "w": waiting})
    if written is None:
        return None
    outcome, _ = written
    first_seq, turns_given, was_closed, ahead = outcome["s"], outcome["g"], outcome["c"], outcome["w"]
    return [Place(first_seq + i, i < turns_given, was_closed, ahead + max(0, i - turns_given)) for i in range(count)]


async def give_back_place(db: AsyncDatabase, event_id: str, place: Place) -> bool:
    """Undo a place nobody will use, if no place was taken after it (the usual case: a
    buyer's repeated join); False if one was, and the place must be given up the long way."""
    guard: dict[str, Any] = {"_id": ObjectId(event_id), "nextQueueSeq": place.seq}
    changes: dict[str, Any] = {"nextQueueSeq": place.seq - 1}
    if place.admitted:  # the turn and a slot came with it, and nobody waited: every seq before it is dealt with
        guard["admittedThrough"] = place.seq
        changes |= {"admittedThrough": place.seq - 1, "activeCheckouts": {"$max": [0, {"$subtract": [_ACTIVE, 1]}]},
                    "claimableStock": {"$add": [_CLAIMABLE, 1]}}
    else:
        guard["admittedThrough"] = {"$not": {"$gte": place.seq}}
    result = await db.events.update_one(guard, [{"$set": changes}])
    return result.modified_count == 1


async def move_on(db: AsyncDatabase, event_id: str, limit: int, *, freed: int, most: int = 1, returned: int = 0) -> Turn:
    """Give the next waiting seqs their turns, as many as slots are free and stock is claimable,
    `most` at most (`freed`: the slots the caller gives up, `returned`: the claimable stock it
    gives back, both of which then go to those seqs, or back to the pool)."""
    active = {"$max": [0, {"$subtract": [_ACTIVE, int(freed)]}]}
    claimable = {"$add": [_CLAIMABLE, int(returned)]}
    waiting = {"$subtract": [_NEXT, {"$add": [_THROUGH, {"$size": _SKIPPED}]}]}
    given = {"$cond": [_CLOSED, 0, {"$max": [0, {"$min": [most, {"$subtract": [limit, active]}, waiting, claimable]}]}]}
    # The given-th live seq after admittedThrough: each skipped seq on the way is stepped over
    # (skippedSeqs is ascending, all above admittedThrough).
    last = {"$reduce": {
        "input": _SKIPPED, "initialValue": {"$add": [_THROUGH, given]},
        "in": {"$cond": [{"$lte": ["$$this", "$$value"]}, {"$add": ["$$value", 1]}, "$$value"]},
    }}
    give = {"$gt": [given, 0]}
    written = await _write(db, event_id, {
        "admittedThrough": {"$cond": [give, last, _THROUGH]},
        "skippedSeqs": {"$cond": [give, {"$filter": {"input": _SKIPPED, "as": "s", "cond": {"$gt": ["$$s", last]}}},
                                  _SKIPPED]},
        "activeCheckouts": {"$add": [active, given]},
        "claimableStock": {"$subtract": [claimable, given]},
    }, {"s": {"$cond": [give, last, None]}, "g": given})
    if written is None:
        return Turn(None, Turns(0, 0, (), 0, None))
    outcome, counted = written
    return Turn(outcome["s"], counted, outcome["g"])


async def skip(db: AsyncDatabase, event_id: str, seq: int) -> bool | None:
    """A buyer left WAITING before their turn: their seq is skipped, unless the turn had
    already come to it: then True, and the caller passes the turn on. None: no such event."""
    ahead = {"$gt": [seq, _THROUGH]}
    written = await _write(db, event_id, {
        "skippedSeqs": {"$cond": [ahead, {"$sortArray": {"input": {"$setUnion": [_SKIPPED, [seq]]}, "sortBy": 1}},
                                  _SKIPPED]},
    }, {"g": {"$not": [ahead]}})
    return None if written is None else written[0]["g"]


# Outcomes kept on the event, newest last: far more than the writes that can land between
# one of ours and our read of it (each process has a handful of connections).
LOG_KEPT = 100


class OutcomeLost(RuntimeError):
    """More than LOG_KEPT writes landed between ours and our read of its outcome."""


async def _write(db: AsyncDatabase, event_id: str, changes: dict[str, Any], outcome: dict[str, Any]) -> tuple[dict, Turns] | None:
    """Apply `changes` (expressions over the document as it was) in one guarded write, and
    return what `outcome` said of that write, with the counters as read just after; None if
    the event does not exist.

    Not `find_one_and_update`: SecantusDB executes its write with the filter
    `{_id, $and: [query]}`, and a top-level `$and` sends the write to a scan of
    the whole collection (secantus/storage.py `_try_index_id_keys`; measured
    19 ms at 2,000 documents and 68 ms at 10,000, against 1 ms for `update_one`
    by `_id`). So the outcome goes into a short log on the event, under a token
    of ours, and is read back by `_id`.
    """
    token = ObjectId()
    log = {"$slice": [{"$concatArrays": [{"$ifNull": ["$turnLog", []]}, [{"k": {"$literal": token}, **outcome}]]},
                      -LOG_KEPT]}
    oid = ObjectId(event_id)
    result = await db.events.update_one({"_id": oid}, [{"$set": {**changes, "turnLog": log, "queueActivityAtUtc": now_ms()}}])
    if result.matched_count == 0:
        return None
    doc = await db.events.find_one({"_id": oid}, projection={**_FIELDS, "turnLog": 1})
    for entry in reversed((doc or {}).get("turnLog") or []):
        if entry.get("k") == token:
            return entry, Turns.of(doc)
    raise OutcomeLost(f"the outcome of a write to the turns of {event_id} was overwritten before it was read")


async def close(db: AsyncDatabase, event_id: str, *, slots: int) -> None:
    """The queue closed: `slots` slots are free (with the stock their buyers could claim), and
    every seq handed out has been dealt with."""
    changes: dict[str, Any] = {"admittedThrough": {"$max": [_THROUGH, _NEXT]}, "closedThrough": {"$max": [_THROUGH, _NEXT]},
                               "skippedSeqs": []}
    if slots:  # a closing that freed nothing is no sign of a busy sale (the repair looks at this)
        changes |= {"activeCheckouts": {"$max": [0, {"$subtract": [_ACTIVE, slots]}]}, "queueActivityAtUtc": now_ms(),
                    "claimableStock": {"$add": [_CLAIMABLE, slots]}}
    await db.events.update_one({"_id": ObjectId(event_id)}, [{"$set": changes}])


async def seat_offer(db: AsyncDatabase, event_id: str, held: int) -> int | None:
    """A waitlist offer's place: the next seq, with its turn and a slot, holding `held` tickets
    taken already, only if nobody waits in the queue (the queue comes first); the seq, or
    None. The slot's limit does not apply: the stock, not the queue, decides who is offered."""
    waiting = {"$subtract": [_NEXT, {"$add": [_THROUGH, {"$size": _SKIPPED}]}]}
    free = {"$eq": [waiting, 0]}
    seq = {"$add": [_NEXT, 1]}
    written = await _write(db, event_id, {
        "nextQueueSeq": {"$cond": [free, seq, _NEXT]},
        "admittedThrough": {"$cond": [free, seq, _THROUGH]},
        "skippedSeqs": {"$cond": [free, [], _SKIPPED]},
        "activeCheckouts": {"$cond": [free, {"$add": [_ACTIVE, 1]}, _ACTIVE]},
        # The stock it holds leaves what admissions may claim (and comes back with its end).
        "claimableStock": {"$cond": [free, {"$subtract": [_CLAIMABLE, held]}, _CLAIMABLE]},
    }, {"s": {"$cond": [free, seq, None]}})
    return None if written is None else written[0]["s"]


async def claim(db: AsyncDatabase, event_id: str, extra: int) -> bool:
    """An admitted buyer holds `extra` tickets beyond the one its turn claimed, if that much is
    claimable; False if not (the others admitted must keep a ticket each)."""
    result = await db.events.update_one({"_id": ObjectId(event_id), "claimableStock": {"$not": {"$lt": extra}}},
                                        [{"$set": {"claimableStock": {"$subtract": [_CLAIMABLE, extra]}}}])
    return result.matched_count == 1


async def add_claimable(db: AsyncDatabase, event_id: str, amount: int) -> None:
    """New stock (ticket types added): that much more to claim."""
    await db.events.update_one({"_id": ObjectId(event_id)}, [{"$set": {"claimableStock": {"$add": [_CLAIMABLE, amount]}}}])


async def skip_lost(db: AsyncDatabase, event_id: str, seen: Turns, lost: list[int]) -> bool:
    """Repair: skip seqs whose join never wrote an entry, if the counters are still `seen`."""
    result = await db.events.update_one(
        {"_id": ObjectId(event_id), "admittedThrough": seen.through or {"$in": [0, None]},
         "nextQueueSeq": seen.next_seq},
        {"$set": {"skippedSeqs": sorted(set(seen.skipped) | set(lost))}},
    )
    return result.modified_count == 1
