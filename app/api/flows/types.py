"""GraphQL types of the flows that span domains (app/flows)."""

from __future__ import annotations

import strawberry

from app.api.catalog.types import EventStatus, EventTicket


@strawberry.type(description="Live sales state of one event, for dashboards.")
class EventInventory:
    event_id: strawberry.ID
    status: EventStatus  # type: ignore[valid-type]
    tickets_remaining: int
    ticket_types: list[EventTicket]
    waiting_count: int
    active_checkouts: int
