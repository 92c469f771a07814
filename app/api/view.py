"""The GraphQL endpoint: Strawberry's aiohttp view with our context, auth and GraphiQL page."""

from __future__ import annotations

import asyncio
import json
import math
import time
import weakref
from importlib import resources
from pathlib import Path
from typing import Any, TypeGuard

from aiohttp import hdrs, web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from app.api.context import Context
from app.api.sockets import TOO_MANY_SOCKETS, LegacyWSHandler, SocketCounts, TransportWSHandler
from app.appkeys import DB, FEEDS, JWT_SECRET, RUNTIME, SETTINGS
from app.auth import ANONYMOUS, viewer_from_authorization
from app.config import Settings

GRAPHIQL_STATIC_ROUTE = "/graphiql/static"
DEFAULT_QUERY = """# Welcome to the ticketing API. Try:
query UpcomingEvents {
  events(first: 5) {
    edges { node { id title startsAt startsAtLocal status venue { name city } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def graphiql_static_dir() -> Path:
    """GraphiQL, React and graphql-ws builds, as installed from PyPI's graphene-django-graphiql-static."""
    package = resources.files("graphene_django_graphiql_static")
    return Path(str(package / "static" / "graphene_django_graphiql_static"))


def render_graphiql(default_headers: dict[str, str] | None = None) -> str:
    template = resources.files("app").joinpath("graphiql.html").read_text()
    return template.format(
        static=GRAPHIQL_STATIC_ROUTE,
        default_headers=json.dumps(json.dumps(default_headers or {}, indent=2)),
        default_query=json.dumps(DEFAULT_QUERY),
    )


class TicketingGraphQLView(GraphQLView):
    """Builds each request's `Context`, limits websockets and serves our offline GraphiQL page."""

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self, *args: Any, graphiql_headers: dict[str, str] | None = None, sockets_per_client: int = 20, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._graphiql_html = render_graphiql(graphiql_headers)
        self._expiries = SocketExpiries()
        self.socket_counts = SocketCounts(sockets_per_client)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """As Strawberry's, but a refused request (bad JSON, unknown operation name,
        a mutation over GET...) is answered in GraphQL's JSON shape with a code,
        not as plain text, so clients such as GraphiQL and Apollo can show it."""
        try:
            answered = await self._plain_post(request)
            return answered if answered is not None else await self.run(request=request)
        except HTTPException as error:
            body = {"errors": [{"message": error.reason, "extensions": {"code": "BAD_REQUEST"}}]}
            return web.json_response(body, status=error.status_code)

    async def _plain_post(self, request: web.Request) -> web.Response | None:
        """The answer to the request most clients send (a POST of JSON naming one query or mutation
        the schema has seen before and found valid), else None: Strawberry's path answers the rest.

        It is Strawberry's answer, by Strawberry's own hooks (context, result, response), without
        the request adapter, the content-type parsing (through `email.message`) and the protocol
        checks Strawberry's `run` makes for every kind of request: ~60 us of Q2's CPU.
        """
        if request.method != "POST" or _media_type(request.headers.get(hdrs.CONTENT_TYPE)) != "application/json":
            return None
        accept = request.headers.get(hdrs.ACCEPT, "")
        if "multipart/" in accept or "text/event-stream" in accept:  # streamed transports: Strawberry's
            return None
        try:
            body = self.decode_json(await request.read())
        except ValueError:  # Strawberry's path reads the body again (aiohttp keeps it) and refuses it
            return None
        if not isinstance(body, dict) or body.keys() - _PLAIN_KEYS or body.get("extensions") is not None:
            return None
        query, variables, operation_name = body.get("query"), body.get("variables"), body.get("operationName")
        if (not isinstance(query, str) or not isinstance(variables, dict | None)
                or not isinstance(operation_name, str | None)
                or self.schema.prepared_kind(query, operation_name) not in _PLAIN_KINDS):
            return None
        response = web.Response()
        context = await self.get_context(request, response)
        result = await self.schema.execute(query, variables, context, await self.get_root_value(request), operation_name)
        return self.create_response(await self.process_result(request, result), response)

    def is_websocket_request(self, request: web.Request) -> TypeGuard[web.Request]:
        """As Strawberry's, without its cost on plain HTTP requests.

        Strawberry's check (called twice per request) builds a WebSocketResponse
        and runs the whole handshake, which raises and builds an HTTPBadRequest
        for every ordinary POST: ~14 us each time. A request whose Upgrade header
        is not "websocket" fails that handshake's first test, so it is answered
        here without one; anything else still goes through Strawberry's check.
        """
        if request.headers.get(hdrs.UPGRADE, "").lower().strip() != "websocket":
            return False
        return super().is_websocket_request(request)

    async def on_ws_connect(self, context: Context) -> Any:
        """Authenticate a websocket from its `connection_init` payload.

        No `authorization` means an anonymous connection; one that does not
        verify (expired, forged, malformed) is refused at connect time: close
        4403 on graphql-transport-ws, `connection_error` on legacy graphql-ws.
        A client with as many sockets open as it may is refused with close 4429.
        """
        params = context.connection_params or {}
        header = params.get("authorization", params.get("Authorization"))
        if header is not None:
            secret = context.request.app[JWT_SECRET] if context.request is not None else None
            viewer = viewer_from_authorization(secret, header if isinstance(header, str) else "invalid")
            if viewer.token_error:
                raise ConnectionRejectionError({"message": viewer.token_error, "code": "UNAUTHENTICATED"})
            context.viewer = viewer
        await self._count_socket(context)
        if context.viewer.expires_at is not None and isinstance(context.response, web.WebSocketResponse):
            self._expiries.add(context.response, context.viewer.expires_at)
        return UNSET

    async def _count_socket(self, context: Context) -> None:
        key = context.client_key
        if self.socket_counts.open(key):
            context.socket_client = key  # uncounted by the protocol handler when the socket ends
            return
        limit = self.socket_counts.limit
        reason = f"too many open sockets for this client ({limit}): close one first"
        # graphql-transport-ws closes a rejection with 4403, which means a bad token: closed here
        # with our own code first. Legacy graphql-ws sends the payload as `connection_error`.
        socket = context.response
        if isinstance(socket, web.WebSocketResponse) and socket.ws_protocol == GRAPHQL_TRANSPORT_WS_PROTOCOL:
            await socket.close(code=TOO_MANY_SOCKETS, message=reason.encode())
        raise ConnectionRejectionError({"message": reason, "code": "RATE_LIMITED"})

    def decode_json(self, data: str | bytes) -> object:
        """As Strawberry's, but JSON nested too deep to decode is malformed JSON like any other:
        a 400 on HTTP, close 4400 on a websocket (it was an internal error and a dead socket)."""
        try:
            return json.loads(data)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", data if isinstance(data, str) else "", 0) from None

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        return web.Response(text=self._graphiql_html, content_type="text/html")

    async def get_context(self, request: web.Request, response: web.StreamResponse) -> Context:
        settings: Settings = request.app[SETTINGS]
        is_websocket = isinstance(response, web.WebSocketResponse)
        viewer = (
            ANONYMOUS
            if is_websocket  # authenticated in on_ws_connect, from connection_init
            else viewer_from_authorization(request.app[JWT_SECRET], request.headers.get("Authorization"))
        )
        return Context(
            db=request.app[DB], settings=settings, viewer=viewer, runtime=request.app[RUNTIME],
            feeds=request.app[FEEDS], request=request, response=response,
        )


_PLAIN_KEYS = frozenset({"query", "variables", "operationName", "extensions"})
_PLAIN_KINDS = frozenset({OperationType.QUERY, OperationType.MUTATION})


def _media_type(content_type: str | None) -> str:
    """`application/json` of `application/json; charset=utf-8`."""
    return (content_type or "").partition(";")[0].strip().lower()


class SocketExpiries:
    """Sockets to close with 4403 when their tokens expire: a connection lives no longer than
    the credential that opened it. One timer per second of expiry, shared by every socket whose
    token ends in that second (a timer per socket held 433 bytes of each of ten thousand), and
    weak references, so that a socket closed early is not kept until its token's end."""

    def __init__(self) -> None:
        self._due: dict[int, list[weakref.ref[web.WebSocketResponse]]] = {}
        self._closing: set[asyncio.Task] = set()  # held, so that none is collected before it finishes

    def add(self, socket: web.WebSocketResponse, expires_at: float) -> None:
        second = math.ceil(expires_at)
        bucket = self._due.get(second)
        if bucket is None:
            bucket = self._due[second] = []
            asyncio.get_running_loop().call_later(max(0.0, second - time.time()), self._close_due, second)
        bucket.append(weakref.ref(socket))

    def _close_due(self, second: int) -> None:
        for ref in self._due.pop(second, ()):
            socket = ref()
            if socket is not None and not socket.closed:
                task = asyncio.get_running_loop().create_task(socket.close(code=4403, message=b"token expired"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
