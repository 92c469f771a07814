"""The live sales state of an event, as dashboards see it (EventInventory)."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog import service as catalog
from app.catalog.models import Event, EventStatus, EventTicket
from app.catalog.turns import Turns
from app.runtime import Runtime


@dataclass(frozen=True)
class InventorySnapshot:
    event: Event
    status: EventStatus
    ticket_types: list[EventTicket]
    waiting_count: int

    @property
    def tickets_remaining(self) -> int:
        return sum(t.quantity_remaining for t in self.ticket_types)


async def snapshot(rt: Runtime, *, event_id: str) -> InventorySnapshot:
    """Two reads: the event (its turns say how many wait) and its ticket types."""
    event = await catalog.get_event(rt, event_id=event_id, field="eventId")
    types = await catalog.ticket_types_of_event(rt, event_id=event.id)
    return InventorySnapshot(event, catalog.current_status(event, types), types, Turns.of_event(event).waiting)
