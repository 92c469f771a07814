"""A short-lived, per-process view of an event and its ticket types, for the sale path only.

Joining, checking out, buying and subscribing each read the event and its
ticket types; in a rush those reads are a large share of the database's work
(DESIGN section 6: round trips are the cost). Stock, slots and the sale's
closing are always decided by guarded writes on the documents themselves, so
a view up to VIEW_MS old never oversells: at worst another process sees a
sell-out, a cancellation or new stock that much later. This process's own
catalog writes drop its views at once. Catalog queries never read it: an
organizer always reads their own writes.

Requests that miss together share one read: when a sale opens, hundreds of
requests arrive in the same millisecond, and each second the view lapses
under all of them at once.
"""

from __future__ import annotations

import asyncio

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from app.catalog import repository as repo
from app.catalog.models import Event, EventTicket
from app.documents import parse_object_id
from app.errors import not_found
from app.timeutil import now_ms

VIEW_MS = 1000
# Past this many views, expired ones are dropped on the next miss.
PRUNE_ABOVE = 10_000

_views: dict[str, tuple[int, Event, list[EventTicket]]] = {}
# Reads under way, by event: requests that miss meanwhile await the same one.
_loading: dict[str, asyncio.Future[tuple[Event, list[EventTicket]] | None]] = {}
# Bumped by `forget`: a read that started before it may predate the write, and is not kept.
_generation: dict[str, int] = {}


async def sale_view(db: AsyncDatabase, *, event_id: str, field: str | None = None) -> tuple[Event, list[EventTicket]]:
    """The event and its ticket types, at most VIEW_MS old (NOT_FOUND for an unknown event)."""
    held = _views.get(event_id)
    if held is not None and held[0] > now_ms():
        return held[1], held[2]
    loading = _loading.get(event_id)
    if loading is None:
        oid = parse_object_id(event_id, "event", field)
        loading = _loading[event_id] = asyncio.ensure_future(_load(db, event_id, oid))
        loading.add_done_callback(lambda done: _loading.pop(event_id) if _loading.get(event_id) is done else None)
    found = await asyncio.shield(loading)  # one caller cancelled must not cancel the others' read
    if found is None:
        raise not_found("event", field)
    return found


async def _load(db: AsyncDatabase, event_id: str, oid: ObjectId) -> tuple[Event, list[EventTicket]] | None:
    started, generation = now_ms(), _generation.get(event_id, 0)
    event = await repo.get_event(db, oid)
    if event is None:
        return None
    types = (await repo.ticket_types_by_event(db, [oid]))[event.id]
    if len(_views) > PRUNE_ABOVE:
        for key in [k for k, (until, _, _) in _views.items() if until <= started]:
            del _views[key]
            _generation.pop(key, None)
    if _generation.get(event_id, 0) == generation:
        _views[event_id] = (started + VIEW_MS, event, types)
    return event, types


def forget(event_id: str) -> None:
    """This process changed the event or its ticket types: the next read is fresh."""
    _views.pop(event_id, None)
    _generation[event_id] = _generation.get(event_id, 0) + 1
    _loading.pop(event_id, None)  # a read under way may predate the change: later readers start their own
