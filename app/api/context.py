"""The per-request context: database, settings, viewer and DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
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
    # On a websocket: the client key it is counted under (app/api/sockets.py), until it ends.
    socket_client: str | None = None
    _ticket_types: DataLoader[str, list[EventTicket]] | None = field(default=None, init=False, repr=False)
    _events: DataLoader[str, Event | None] | None = field(default=None, init=False, repr=False)

    # Made on first use: most requests need neither. On a websocket the context lives as long
    # as the connection: each operation runs on its own copy (`for_operation`), so a query
    # sent an hour after another on the same socket does not read the first one's cache.

    @property
    def client_key(self) -> str:
        """Whose rate limit an operation spends: the signed-in user's, else the client address's.
        (Behind a proxy every anonymous caller shares the proxy's address: configure it to
        limit by the forwarded address itself.)"""
        if self.viewer.user_id is not None:
            return f"user:{self.viewer.user_id}"
        remote = getattr(self.request, "remote", None)
        return f"ip:{remote or 'unknown'}"

    def for_operation(self) -> Context:
        """The context for one operation: itself on HTTP, a copy with empty loaders on a websocket."""
        if isinstance(self.response, web.WebSocketResponse):
            return replace(self)
        return self

    @property
    def ticket_types(self) -> DataLoader[str, list[EventTicket]]:
        if self._ticket_types is None:
            self._ticket_types = DataLoader(load_fn=lambda ids: catalog.ticket_types_for_events(self.db, list(ids)))
        return self._ticket_types

    @property
    def events(self) -> DataLoader[str, Event | None]:
        if self._events is None:
            self._events = DataLoader(load_fn=lambda ids: catalog.events_by_ids(self.db, list(ids)))
        return self._events


Info = StrawberryInfo[Context, None]
