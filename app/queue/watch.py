"""A buyer's own queue entry, live: what `queueUpdates` streams.

Two sources wake a watcher, through one inbox: the buyer's entry channel (one
message per change of the entry) and the event's positions feed (the turns,
re-read at most once a second after a queue change and shared by every watcher
of the event in the process). A watcher yields only what its buyer would see
differently, so a change that moves nobody's place costs no push.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from app.auth import Viewer, require_user
from app.catalog import service as catalog
from app.live import NEWER, EventFeeds
from app.pubsub import channels
from app.queue import service as queue
from app.queue.models import QueueEntry
from app.runtime import Runtime

Shown = TypeVar("Shown")


async def watch_entry(
    rt: Runtime, *, feeds: EventFeeds, actor: Viewer, event_id: str, show: Callable[[QueueEntry, int | None], Shown]
) -> AsyncIterator[Shown]:
    """The buyer's entry as they should see it, with their place, now and after every change
    (nothing until they join), each passed through `show` (the API's type); NOT_FOUND for an
    unknown event. The caller returns this generator as it is: a wrapper around it would
    cost every one of ten thousand open subscriptions another frame."""
    user_id = require_user(actor)  # raised from the stream, as its first message
    event, _ = await catalog.sale_view_of(rt, event_id=event_id, field="eventId")
    async with (
        rt.broker.subscribe(channels.entry(event.id, user_id)) as mine,
        feeds.positions(event.id, lambda: queue.turns_of(rt, event_id=event.id)) as positions,
    ):
        with positions.ticks_into(mine):
            entry = _kept(await queue.get_entry(rt, event_id=event.id, user_id=user_id))
            counted = positions.value
            pace = rt.paces.of(event.id)
            sent: tuple | None = None
            while True:
                if entry is not None:
                    # The wait goes with a change of place; alone it would push every second.
                    seen = queue.as_seen(entry, counted, pace)
                    state = (seen.entry.seq, seen.entry.status, seen.entry.expires_at_utc, seen.place)
                    if state != sent:
                        sent = state
                        yield show(*seen)
                message = await mine.get()
                if message is NEWER:
                    counted = positions.value
                else:
                    entry = _kept(await _apply(rt, entry, message, event.id, user_id))


def _kept(entry: QueueEntry | None) -> QueueEntry | None:
    # Held for as long as the subscription is open, by each of ten thousand of them.
    return entry.kept() if entry is not None else None


async def _apply(rt: Runtime, entry: QueueEntry | None, message: dict, event_id: str, user_id: str) -> QueueEntry | None:
    """The entry after a change message: one message per change, stale ones dropped,
    and a fresh read after a broker reconnect (messages may have been lost)."""
    if "entry" not in message:
        return await queue.get_entry(rt, event_id=event_id, user_id=user_id)
    changed = QueueEntry.model_validate(message["entry"])
    if entry is not None and changed.progress < entry.progress:
        return entry
    return changed
