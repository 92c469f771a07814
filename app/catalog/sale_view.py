"""A short-lived, per-process view of an event and its ticket types, for the sale path only.

Joining, checking out, buying and subscribing each read the event and its
ticket types; in a rush those reads are a large share of the database's work
(DESIGN section 6: round trips are the cost). Stock, slots and the sale's
closing are always decided by guarded writes on the documents themselves, so
a view up to VIEW_MS old never oversells: at worst another process sees a
sell-out, a cancellation or new stock that much later. This process's own
catalog writes drop its views at once. Catalog queries never read it: an
organizer always reads their own writes.
"""

from __future__ import annotations

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


async def sale_view(db: AsyncDatabase, *, event_id: str, field: str | None = None) -> tuple[Event, list[EventTicket]]:
    """The event and its ticket types, at most VIEW_MS old (NOT_FOUND for an unknown event)."""
    now = now_ms()
    held = _views.get(event_id)
    if held is not None and held[0] > now:
        return held[1], held[2]
    event = await repo.get_event(db, parse_object_id(event_id, "event", field))
    if event is None:
        raise not_found("event", field)
    types = (await repo.ticket_types_by_event(db, [parse_object_id(event.id, "event")]))[event.id]
    if len(_views) > PRUNE_ABOVE:
        for key in [k for k, (until, _, _) in _views.items() if until <= now]:
            del _views[key]
    _views[event_id] = (now + VIEW_MS, event, types)
    return event, types


def forget(event_id: str) -> None:
    """This process changed the event or its ticket types: the next read is fresh."""
    _views.pop(event_id, None)
