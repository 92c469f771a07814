"""Group commit of joins: the joins of an event that arrive while one group is being
written go together in the next.

A join costs three commands alone (take a seq, read what the write decided,
insert the entry). When a crowd joins at once, each group of them costs those
same three: the seqs are taken in one write (`turns.take_places`) and the
entries written in one `insert_many`. Nobody waits for a timer: a lone join is
written at once, and a group forms only from the joins that queue up behind a
write in flight, so the busier the sale the bigger the groups.

Each group is written by a task of its own, not by any one request, so a buyer
who hangs up cannot cancel the others' places. A process that dies mid-group
leaves seqs without entries, which the repair skips (as for a single join).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from app.catalog import turns
from app.errors import not_found
from app.queue import repository as repo

log = logging.getLogger("app.queue")

# Joins written in one group at most: bounded so a group's write stays short.
GROUP_MAX = 100
# A WAITING join this near the front looks at the turns once its entry is written: its turn
# may have come meanwhile. Deeper in the queue it cannot come that fast; should it, the
# sweep takes it up within a second (queue.service.take_up_stranded_turns).
LOOK_AGAIN_WITHIN = 10


class Seated(NamedTuple):
    """A join's outcome: its place, its entry's document as written (None: the buyer
    already had an entry, so this one was not written), and, if it waits near the
    front, the turns as read once its entry was written (None otherwise)."""

    place: turns.Place
    doc: dict[str, Any] | None
    turns_after: turns.Turns | None = None


class _Join(NamedTuple):
    user_id: str
    answer: asyncio.Future


# Builds an entry's document for a user's place (`place.closed` never reaches it).
EntryFor = Callable[[str, turns.Place], dict[str, Any]]


class JoinGroups:
    """One per process: the joins waiting for the next group, per event."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[_Join]] = {}
        self._writing: set[str] = set()
        self._tasks: set[asyncio.Task] = set()  # held, so that a running group is never collected

    async def seat(self, db: AsyncDatabase, event_id: str, user_id: str, limit: int, entry_for: EntryFor) -> Seated:
        """A place for the user in the event's queue, and its entry written, in the next group."""
        answer = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(event_id, []).append(_Join(user_id, answer))
        if event_id not in self._writing:
            self._writing.add(event_id)
            task = asyncio.create_task(self._write_groups(db, event_id, limit, entry_for))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a buyer who hangs up stops waiting, but the group is written all the same.
        return await asyncio.shield(answer)

    async def _write_groups(self, db: AsyncDatabase, event_id: str, limit: int, entry_for: EntryFor) -> None:
        try:
            while self._waiting.get(event_id):
                group = self._waiting[event_id][:GROUP_MAX]
                del self._waiting[event_id][:GROUP_MAX]
                try:
                    for join, seated in zip(group, await _write_group(db, event_id, limit, group, entry_for)):
                        if not join.answer.done():
                            join.answer.set_result(seated)
                except Exception as exc:  # every join of the group hears it, as a lone join would
                    for join in group:
                        if not join.answer.done():
                            join.answer.set_exception(exc)
        finally:
            self._writing.discard(event_id)
            if not self._waiting.get(event_id):
                self._waiting.pop(event_id, None)


async def _write_group(db: AsyncDatabase, event_id: str, limit: int, group: list[_Join], entry_for: EntryFor) -> list[Seated]:
    places = await turns.take_places(db, event_id, limit, len(group))
    if places is None:
        raise not_found("event", "eventId")
    if places[0].closed:  # nothing taken: every join of the group hears the queue closed
        return [Seated(place, None) for place in places]
    docs = [entry_for(join.user_id, place) for join, place in zip(group, places)]
    written = await repo.insert_new(db, docs)
    # Our turn may have come before our entry was written: then its giver found nobody to
    # admit. One read after the group's insert tells every join near the front.
    near_front = any(ok and not p.admitted and p.ahead < LOOK_AGAIN_WITHIN for p, ok in zip(places, written))
    after = await turns.read(db, event_id) if near_front else None
    return [Seated(place, doc, after if not place.admitted and place.ahead < LOOK_AGAIN_WITHIN else None)
            if ok else Seated(place, None) for place, doc, ok in zip(places, docs, written)]
