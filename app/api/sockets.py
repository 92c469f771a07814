"""Limits on websockets: open sockets per client in this process, operations per socket.

One client (a user, or an address for anonymous callers: `Context.client_key`, the rate
limiter's key) opened 300 sockets of 100 subscriptions each and all were served. A socket
is counted once its `connection_init` says who it is, and uncounted when it ends; over the
limit it is closed with 4429. An operation over a socket's limit gets an `error` message
with the code RATE_LIMITED, and the socket stays open. The bookkeeping is one counter per
client with a socket open, nothing per socket beyond the key its context already holds.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from app.errors import ErrorCode

TOO_MANY_SOCKETS = 4429


class SocketCounts:
    """Open websockets per client key in this process."""

    __slots__ = ("limit", "_open")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def open(self, key: str) -> bool:
        """Count one more socket of `key`; False (and nothing counted) if it has `limit` open."""
        held = self._open.get(key, 0)
        if held >= self.limit:
            return False
        self._open[key] = held + 1
        return True

    def close(self, key: str) -> None:
        """One socket of `key` ended; a client with none left holds no entry."""
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)

    def held(self, key: str) -> int:
        return self._open.get(key, 0)


def too_many_operations(limit: int) -> GraphQLError:
    return GraphQLError(
        f"this socket already runs {limit} operations: complete one first, or open another socket",
        extensions={"code": ErrorCode.RATE_LIMITED.value, "maxOperationsPerSocket": limit},
    )


class _ReleasesItsCount:
    """Uncounts the socket when its handler ends, however it ends (close, error, token expiry)."""

    view: Any
    context: Any

    async def handle(self) -> None:
        try:
            await super().handle()  # type: ignore[misc]
        finally:
            key = getattr(self.context, "socket_client", None)
            if key is not None:
                self.context.socket_client = None
                self.view.socket_counts.close(key)


class TransportWSHandler(_ReleasesItsCount, BaseGraphQLTransportWSHandler):
    """graphql-transport-ws, with a typed refusal of operations over the socket's limit."""

    async def handle_subscribe(self, message: Any) -> None:
        limit = self.max_subscriptions_per_connection
        if (self.connection_acknowledged and limit is not None and message["id"] not in self.operations
                and len(self.operations) >= limit):
            payload = [too_many_operations(limit).formatted]
            await self.send_message({"id": message["id"], "type": "error", "payload": payload})
            return
        await super().handle_subscribe(message)


class LegacyWSHandler(_ReleasesItsCount, BaseGraphQLWSHandler):
    """The legacy graphql-ws protocol, with the same typed refusal."""

    async def handle_start(self, message: Any) -> None:
        limit = self.max_subscriptions_per_connection
        if (self.connection_acknowledged and limit is not None and message["id"] not in self.tasks
                and len(self.tasks) >= limit):
            await self.send_message({"type": "error", "id": message["id"], "payload": too_many_operations(limit).formatted})
            return
        await super().handle_start(message)
