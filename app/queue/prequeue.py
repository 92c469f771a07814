"""The pre-queue: an event's queue may open some minutes before its sale (queueOpensMinutesBefore).

Buyers who join in that window are written PRE_QUEUE, with no seq: arriving in
the last second gives no advantage over arriving in the first minute. At the
opening their order is drawn at random, once, and written down:
1. the draw is claimed by inserting its record in `queueDraws` (one per event,
   `_id` the event's), with a fresh seed; a claim left by a process that died
   is taken over, with its seed, after STALE_DRAW_MS;
2. the PRE_QUEUE entries are read in `_id` order, kept in the record, and
   hashed; `permutation(seed, ids)` orders them, a pure function anyone can
   run again from the record (support's proof that it was fair);
3. their seqs are taken in one turns write (`turns.take_places`, which also
   gives the first of them the free slots), kept in the record, and written
   50 entries a command, each guarded on PRE_QUEUE (a buyer who left meanwhile
   gives their seq up);
4. the record is marked DRAWN, the event too, and every entry is pushed.
Who draws: the status job at the sale's opening, the sweep, or the first join
after the opening; joins after the opening wait for the draw, then go to the
back. A join that wrote its PRE_QUEUE entry as the draw was finishing goes to
the back too (`settle_stragglers`).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
from typing import Any, NamedTuple

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from app.catalog import service as catalog
from app.catalog import turns
from app.queue import repository as repo
from app.catalog.models import Event, EventTicket
from app.queue.models import QueueStatus
from app.runtime import Runtime
from app.timeutil import now_ms

# Entries whose seq is written in one command: SecantusDB matches `$in` against the whole list
# for every document it looks at, so a list's cost grows with its square.
CHUNK = 50
# A draw claimed this long ago and not finished was left by a process that died.
STALE_DRAW_MS = 30_000
# How long a join after the opening waits for a draw in progress.
DRAW_WAIT_SECONDS = 30.0


class Window(NamedTuple):
    """An event's pre-queue: when it opens, and when the sale opens (the draw)."""

    opens_at: int
    sale_opens_at: int


def window(event: Event, tickets: list[EventTicket]) -> Window | None:
    """The event's pre-queue, if it has one that was not drawn yet."""
    if event.queue_opens_minutes_before is None or event.queue_drawn_at_utc is not None or not tickets:
        return None
    sale_opens_at = min(t.sale_starts_at_utc for t in tickets)
    return Window(sale_opens_at - event.queue_opens_minutes_before * 60_000, sale_opens_at)


def permutation(seed: int, entry_ids: list[str]) -> list[str]:
    """The drawn order of the pre-queued entries (ids in `_id` order): the same for the same seed."""
    order = sorted(entry_ids)
    random.Random(seed).shuffle(order)
    return order


def entries_hash(entry_ids: list[str]) -> str:
    """What the draw was made of: a SHA-256 of the entry ids, in `_id` order."""
    return hashlib.sha256(",".join(sorted(entry_ids)).encode()).hexdigest()


class Draw(NamedTuple):
    """A draw's record, as stored in queueDraws."""

    event_id: str
    seed: int
    state: str  # DRAWING or DRAWN
    entry_ids: list[str]
    entries_hash: str | None
    first_seq: int | None
    given: int
    started_at_utc: int
    drawn_at_utc: int | None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Draw:
        return cls(str(doc["_id"]), int(doc["seed"]), doc["state"], [str(i) for i in doc.get("entryIds") or []],
                   doc.get("entriesHash"), doc.get("firstSeq"), doc.get("given", 0), doc["startedAtUtc"],
                   doc.get("drawnAtUtc"))


async def get_draw(rt: Runtime, event_id: str) -> Draw | None:
    doc = await rt.db.queueDraws.find_one({"_id": ObjectId(event_id)})
    return Draw.of(doc) if doc else None


async def claim(rt: Runtime, event_id: str, seed: int | None = None) -> Draw | None:
    """This process's claim on the event's draw: a new one, or one a dead process left; None
    if the draw is done, or another process is drawing."""
    now = now_ms()
    doc = {"_id": ObjectId(event_id), "state": "DRAWING", "seed": seed if seed is not None else secrets.randbits(63),
           "startedAtUtc": now}
    try:
        await rt.db.queueDraws.insert_one(doc)
        return Draw.of(doc)
    except DuplicateKeyError:
        pass
    existing = await get_draw(rt, event_id)
    if existing is None or existing.state == "DRAWN" or existing.started_at_utc > now - STALE_DRAW_MS:
        return None
    taken = await rt.db.queueDraws.update_one(
        {"_id": ObjectId(event_id), "state": "DRAWING", "startedAtUtc": existing.started_at_utc},
        {"$set": {"startedAtUtc": now}})
    return existing if taken.modified_count else None


async def fix_entries(rt: Runtime, draw: Draw) -> Draw:
    """The entries the draw is made of, read once and kept in its record (a draw taken over
    keeps the ones its first drawer read)."""
    if draw.entries_hash is not None:
        return draw
    ids = await repo.pre_queued_ids(rt.db, draw.event_id)
    kept = {"entryIds": [ObjectId(i) for i in ids], "entriesHash": entries_hash(ids)}
    await rt.db.queueDraws.update_one({"_id": ObjectId(draw.event_id), "entriesHash": None}, {"$set": kept})
    return Draw.of(await rt.db.queueDraws.find_one({"_id": ObjectId(draw.event_id)}))


async def fix_seqs(rt: Runtime, draw: Draw) -> Draw | None:
    """The seqs of the drawn entries, taken once from the turns (the first of them with the free
    slots) and kept in the record; None if the queue is closed (sold out or cancelled)."""
    if draw.first_seq is not None or not draw.entry_ids:
        return draw
    places = await turns.take_places(rt.db, draw.event_id, rt.settings.checkout_limit, len(draw.entry_ids))
    if places is None or places[0].closed:
        return None
    kept = {"firstSeq": places[0].seq, "given": sum(1 for p in places if p.admitted)}
    await rt.db.queueDraws.update_one({"_id": ObjectId(draw.event_id), "firstSeq": None}, {"$set": kept})
    return Draw.of(await rt.db.queueDraws.find_one({"_id": ObjectId(draw.event_id)}))


async def mark_drawn(rt: Runtime, draw: Draw) -> None:
    """The draw is done: its record says so, and so does the event (its queue is an ordinary one now)."""
    now = now_ms()
    await rt.db.queueDraws.update_one({"_id": ObjectId(draw.event_id)}, {"$set": {"state": "DRAWN", "drawnAtUtc": now}})
    await catalog.mark_queue_drawn(rt, event_id=draw.event_id, at=now)


async def wait_until_drawn(rt: Runtime, event_id: str) -> bool:
    """Wait for another process's draw; whether it finished in time."""
    deadline = asyncio.get_running_loop().time() + DRAW_WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        draw = await get_draw(rt, event_id)
        if draw is not None and draw.state == "DRAWN":
            return True
        await asyncio.sleep(0.05)
    return False


def seats(draw: Draw) -> list[tuple[str, int, bool]]:
    """(entry id, seq, admitted) of every drawn entry, in the drawn order."""
    assert draw.first_seq is not None
    return [(entry_id, draw.first_seq + i, i < draw.given)
            for i, entry_id in enumerate(permutation(draw.seed, draw.entry_ids))]


async def write_seats(rt: Runtime, chunk: list[tuple[str, int, bool]], now: int) -> set[str]:
    """Give a chunk of drawn entries their seqs (ADMITTED with their turn, else WAITING), each
    only if it is still PRE_QUEUE; the ids written."""
    admitted_until = now + rt.settings.checkout_expiry_seconds * 1000
    waiting_until = now + rt.settings.queue_expiry_seconds * 1000
    return await repo.seat_pre_queued(rt.db, [
        repo.Seat(entry_id, seq, QueueStatus.ADMITTED if admitted else QueueStatus.WAITING, now if admitted else None,
                  admitted_until if admitted else waiting_until)
        for entry_id, seq, admitted in chunk])


def chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
