"""The per-request context: database, settings, viewer and DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from app.auth import Viewer
from app.catalog import service as catalog
from app.catalog.models import Event, EventTicket
from app.config import Settings
from app.live import EventFeeds
from app.runtime import Runtime


@dataclass
class Context:
    """Built once per HTTP request, or once per websocket connection."""

    db: AsyncDatabase
    settings: Settings
    viewer: Viewer
    runtime: Runtime
    feeds: EventFeeds
    request: Any = None
    response: Any = None
    # Set by Strawberry on websockets from the `connection_init` payload.
    connection_params: dict[str, Any] | None = None
    ticket_types: DataLoader[str, list[EventTicket]] = field(init=False)
    events: DataLoader[str, Event | None] = field(init=False)

    def __post_init__(self) -> None:
        # On a websocket the context lives as long as the connection, so
        # subscriptions read through the feeds, never through these caches.
        self.ticket_types = DataLoader(load_fn=lambda ids: catalog.ticket_types_for_events(self.db, list(ids)))
        self.events = DataLoader(load_fn=lambda ids: catalog.events_by_ids(self.db, list(ids)))


Info = StrawberryInfo[Context, None]
