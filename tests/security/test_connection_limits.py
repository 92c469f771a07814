"""Issue 10, finding 11: one client opened 300 sockets of 100 subscriptions each, all served.

Websockets are limited per client (the rate limiter's key: the user of a token, else the
address) in each API process, and operations per socket; both refusals say why."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp
import pytest

from app.api.view import TicketingGraphQLView
from app.config import Settings
from tests.api_client import document
from tests.conftest import make_token
from tests.factories import on_sale_event

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
WAIT = 5


async def _open(api, token: str | None = None, protocol: str = TRANSPORT_WS) -> aiohttp.ClientWebSocketResponse:
    ws = await api.http.ws_connect("/graphql", protocols=[protocol])
    await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"} if token else {}})
    return ws


async def _acked(ws: aiohttp.ClientWebSocketResponse) -> bool:
    message = await ws.receive(timeout=WAIT)
    if message.type is aiohttp.WSMsgType.TEXT:
        assert message.json()["type"] == "connection_ack", message.data
        return True
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    return False


async def _refused_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
    message = await ws.receive(timeout=WAIT)
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    return message.data, message.extra


def _counts(api):
    (view,) = [r.handler for r in api.app.router.routes() if isinstance(r.handler, TicketingGraphQLView)]
    return view.socket_counts


async def test_a_client_over_its_sockets_is_closed_with_4429_and_a_reason(make_api):
    api = await make_api(max_sockets_per_client=3)
    async with AsyncExitStack() as stack:
        held = [await _open(api) for _ in range(3)]
        for ws in held:
            stack.push_async_callback(ws.close)
        assert [await _acked(ws) for ws in held] == [True, True, True]
        over = await _open(api)
        code, reason = await _refused_with(over)
        assert code == 4429 and "too many open sockets" in reason
        # The refused socket was never counted; one closed frees its place at once.
        await held[0].close()
        await asyncio.sleep(0.1)
        again = await _open(api)
        stack.push_async_callback(again.close)
        assert await _acked(again)
        assert _counts(api).held("ip:127.0.0.1") == 3


async def test_each_user_and_the_anonymous_address_have_their_own_sockets(make_api):
    api = await make_api(max_sockets_per_client=2)
    alice, bob = make_token("alice"), make_token("bob")
    async with AsyncExitStack() as stack:
        async def opened(token: str | None) -> bool:
            ws = await _open(api, token)
            stack.push_async_callback(ws.close)
            return await _acked(ws)

        assert [await opened(alice), await opened(alice)] == [True, True]
        assert not await opened(make_token("alice"))  # another token of the same user
        assert [await opened(bob), await opened(None), await opened(None)] == [True, True, True]
        assert not await opened(None)


async def test_every_socket_that_ends_is_uncounted_whoever_ends_it(make_api, organizer):
    """Closed by the client, by the server at the token's expiry, or by a protocol error: the
    counter dict is empty once all have ended (nothing per socket is left behind)."""
    api = await make_api(max_sockets_per_client=2)
    short = make_token("carol", ttl=2)
    by_client, by_expiry, by_error = await _open(api), await _open(api, short), await _open(api, organizer)
    assert [await _acked(ws) for ws in (by_client, by_expiry, by_error)] == [True, True, True]
    await by_client.close()
    await by_error.send_str("not json")
    assert (await _refused_with(by_error))[0] == 4400
    assert (await _refused_with(by_expiry))[0] == 4403
    await asyncio.sleep(0.1)
    assert _counts(api)._open == {}


async def test_legacy_graphql_ws_is_refused_with_a_typed_connection_error(make_api):
    api = await make_api(max_sockets_per_client=1)
    first = await _open(api, protocol=LEGACY_WS)
    try:
        assert await _acked(first)
        over = await _open(api, protocol=LEGACY_WS)
        message = await _legacy_message(over)
        assert message["type"] == "connection_error"
        assert message["payload"]["code"] == "RATE_LIMITED"
        await over.close()
    finally:
        await first.close()


async def _legacy_message(ws: aiohttp.ClientWebSocketResponse) -> dict:
    """The next message but keep-alives (legacy graphql-ws sends "ka" on its own)."""
    while (message := await ws.receive_json(timeout=WAIT))["type"] == "ka":
        pass
    return message


def _subscribe(op_id: str, event_id: str) -> dict:
    return {"id": op_id, "type": "subscribe",
            "payload": {"query": document("EventInventory"), "variables": {"eventId": event_id}}}


async def test_a_subscription_over_the_socket_limit_is_rate_limited_and_the_socket_lives(make_api, organizer):
    api = await make_api(max_subscriptions_per_socket=2)
    event, _ = await on_sale_event(api, organizer)
    ws = await _open(api)
    try:
        assert await _acked(ws)
        for op_id in ("1", "2"):
            await ws.send_json(_subscribe(op_id, event["id"]))
            assert (await ws.receive_json(timeout=WAIT))["type"] == "next"
        await ws.send_json(_subscribe("3", event["id"]))
        refused = await ws.receive_json(timeout=WAIT)
        assert refused["type"] == "error" and refused["id"] == "3"
        assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        # Completing one frees its place on the same socket.
        await ws.send_json({"id": "1", "type": "complete"})
        await asyncio.sleep(0.1)
        await ws.send_json(_subscribe("4", event["id"]))
        assert (await ws.receive_json(timeout=WAIT)) | {"payload": None} == {"id": "4", "type": "next", "payload": None}
    finally:
        await ws.close()


async def test_legacy_graphql_ws_refuses_a_start_over_the_limit_with_the_same_code(make_api, organizer):
    api = await make_api(max_subscriptions_per_socket=1)
    event, _ = await on_sale_event(api, organizer)
    ws = await _open(api, protocol=LEGACY_WS)
    try:
        assert await _acked(ws)
        start = {"type": "start", "payload": {"query": document("EventInventory"), "variables": {"eventId": event["id"]}}}
        await ws.send_json(start | {"id": "1"})
        assert (await _legacy_message(ws))["type"] == "data"
        await ws.send_json(start | {"id": "2"})
        refused = await _legacy_message(ws)
        assert refused["type"] == "error" and refused["payload"]["extensions"]["code"] == "RATE_LIMITED"
    finally:
        await ws.close()


def test_the_limits_are_read_from_the_environment(monkeypatch):
    defaults = Settings(_env_file=None)
    assert (defaults.max_sockets_per_client, defaults.max_subscriptions_per_socket) == (20, 100)
    monkeypatch.setenv("MAX_SOCKETS_PER_CLIENT", "7")
    monkeypatch.setenv("MAX_SUBSCRIPTIONS_PER_SOCKET", "9")
    assert (Settings(_env_file=None).max_sockets_per_client, Settings(_env_file=None).max_subscriptions_per_socket) == (7, 9)
    monkeypatch.setenv("MAX_SOCKETS_PER_CLIENT", "0")
    with pytest.raises(ValueError):
        Settings(_env_file=None)
