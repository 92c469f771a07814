"""The queue's two busiest commands, grouped (app/batches.py): the joins of an event that
arrive while one group is being written go together in the next, and so do reads of
buyers' entries.

A join costs three commands alone (take a seq, read what the write decided,
insert the entry). A group of joins costs the same three: its seqs are taken in
one write (`turns.take_places`), and its entries written in one `insert_many`.
A process that dies mid-group leaves seqs without entries, which the repair
skips, as it does for a single join. The reads (a subscription's first look, a
checkout's and a purchase's) are one `find` with `$in` on the (eventId, userId)
index per group, and the starts of checkout one `update` command of many statements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from app.catalog import turns
from app.errors import not_found
from app.queue import repository as repo
from app.queue.models import QueueEntry

# A WAITING join this near the front looks at the turns once its entry is written: its turn
# may have come meanwhile. Deeper in the queue it cannot come that fast; should it, the
# sweep takes it up within a second (queue.service.take_up_stranded_turns).
LOOK_AGAIN_WITHIN = 10


class Join(NamedTuple):
    """One buyer's join, as submitted to the event's next group."""

    db: AsyncDatabase
    user_id: str
    limit: int  # CHECKOUT_LIMIT
    entry_for: Callable[[str, turns.Place], dict[str, Any]]  # the entry's document for a user's place


class Seated(NamedTuple):
    """A join's outcome: its place, its entry's document as written (None: the buyer
    already had an entry, so this one was not written), and, if it waits near the
    front, the turns as read once its entry was written (None otherwise)."""

    place: turns.Place
    doc: dict[str, Any] | None
    turns_after: turns.Turns | None = None


async def write_group(event_id: str, group: list[Join]) -> list[Seated]:
    """Places for a group of joins of one event, and their entries written."""
    db, limit, entry_for = group[0].db, group[0].limit, group[0].entry_for  # the same for every join of a process
    places = await turns.take_places(db, event_id, limit, len(group))
    if places is None:
        raise not_found("event", "eventId")
    if places[0].closed:  # nothing taken: every join of the group hears the queue closed
        return [Seated(place, None) for place in places]
    docs = [entry_for(join.user_id, place) for join, place in zip(group, places)]
    written = await repo.insert_new(db, docs)
    # Our turn may have come before our entry was written: then its giver found nobody to
    # admit. One read after the group's insert tells every join near the front.
    near_front = [ok and not p.admitted and p.ahead < LOOK_AGAIN_WITHIN for p, ok in zip(places, written)]
    after = await turns.read(db, event_id) if any(near_front) else None
    return [Seated(place, doc if ok else None, after if near else None)
            for place, doc, ok, near in zip(places, docs, written, near_front)]


class Read(NamedTuple):
    """One request's read of a buyer's entry."""

    db: AsyncDatabase
    user_id: str


async def read_entries(event_id: str, reads: list[Read]) -> list[QueueEntry | None]:
    """The entries of a group of reads of one event, in one command."""
    found = await repo.get_many(reads[0].db, event_id, sorted({r.user_id for r in reads}))
    return [found.get(r.user_id) for r in reads]


class CheckoutStart(NamedTuple):
    """One request's start of checkout."""

    db: AsyncDatabase
    attach: repo.Attach


async def attach_sessions(event_id: str, group: list[CheckoutStart]) -> list[QueueEntry | None]:
    """The checkouts of a group of buyers of one event, started in one command."""
    return await repo.attach_sessions(group[0].db, [a.attach for a in group])
