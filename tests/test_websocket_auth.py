"""Websocket auth: the token rides in connection_init (Apollo's connectionParams), message by message."""

from __future__ import annotations

import aiohttp

from tests.conftest import make_token

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
CREATE_VENUE = (
    'mutation { createVenue(input: {name: "Hall", city: "Oslo", country: "NO", timezone: "Europe/Oslo"})'
    " { venue { name } errors { code } } }"
)


async def _run(ws, op_id: str, query: str) -> dict:
    await ws.send_json({"id": op_id, "type": "subscribe", "payload": {"query": query}})
    result = await ws.receive_json(timeout=5)
    assert result["type"] == "next", result
    assert (await ws.receive_json(timeout=5)) == {"id": op_id, "type": "complete"}
    return result["payload"]["data"]


async def test_a_valid_token_is_acknowledged_and_operations_run(api, organizer):
    async with api.http.ws_connect("/graphql", protocols=[TRANSPORT_WS]) as ws:
        assert ws.protocol == TRANSPORT_WS
        await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {organizer}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        assert await _run(ws, "1", "{ venues { name } }") == {"venues": []}
        # The connection acts as the token's user.
        created = await _run(ws, "2", CREATE_VENUE)
        assert created["createVenue"] == {"venue": {"name": "Hall"}, "errors": []}


async def test_no_token_is_an_anonymous_connection(api):
    async with api.http.ws_connect("/graphql", protocols=[TRANSPORT_WS]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        refused = await _run(ws, "1", CREATE_VENUE)
        assert refused["createVenue"] == {"venue": None, "errors": [{"code": "UNAUTHENTICATED"}]}


async def test_a_bad_token_is_refused_at_connect_time(api):
    expired = make_token("u1", ttl=-5)
    forged = make_token("u1", secret="another-secret-another-secret-another")
    for authorization in (f"Bearer {expired}", f"Bearer {forged}", "Bearer nonsense", "Basic abc", 42):
        async with api.http.ws_connect("/graphql", protocols=[TRANSPORT_WS]) as ws:
            await ws.send_json({"type": "connection_init", "payload": {"authorization": authorization}})
            message = await ws.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.CLOSE, (authorization, message)
            assert message.data == 4403


async def test_legacy_graphql_ws_refuses_a_bad_token_with_connection_error(api):
    async with api.http.ws_connect("/graphql", protocols=[LEGACY_WS]) as ws:
        assert ws.protocol == LEGACY_WS
        await ws.send_json({"type": "connection_init", "payload": {"authorization": "Bearer nonsense"}})
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "connection_error"
        assert message["payload"]["code"] == "UNAUTHENTICATED"


async def test_legacy_graphql_ws_acknowledges_a_valid_token(api, buyer):
    async with api.http.ws_connect("/graphql", protocols=[LEGACY_WS]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {buyer}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"


async def test_cross_origin_websockets_need_a_listed_origin(aiohttp_client, mongo_uri):
    from app.config import Settings
    from app.server import create_app
    from tests.conftest import JWT_SECRET

    app = create_app(Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, cors_origins="http://localhost:3000"))
    client = await aiohttp_client(app)
    async with client.ws_connect("/graphql", protocols=[TRANSPORT_WS], headers={"Origin": "http://localhost:3000"}) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    try:
        await client.ws_connect("/graphql", protocols=[TRANSPORT_WS], headers={"Origin": "https://evil.example"})
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 403
    else:
        raise AssertionError("a websocket from an unlisted origin was accepted")


async def test_a_socket_closes_with_4403_when_its_token_expires(api, organizer):
    """A connection lives no longer than the token that opened it (issue 10): an open
    subscription is cut, and nothing more can be asked on that socket."""
    from tests.factories import on_sale_event

    event, _ = await on_sale_event(api, organizer)
    short = make_token("buyer-short", ttl=2)
    async with api.http.ws_connect("/graphql", protocols=[TRANSPORT_WS]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {short}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        assert await _run(ws, "1", "{ myTickets { id } }") == {"myTickets": []}  # valid while the token is
        await ws.send_json({"id": "2", "type": "subscribe", "payload": {
            "query": "subscription($e: ID!) { queueUpdates(eventId: $e) { status } }", "variables": {"e": event["id"]}}})
        while True:  # nothing is pushed before the buyer joins; the close is what comes
            message = await ws.receive(timeout=5)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert message.data == 4403


async def test_queries_on_one_socket_read_fresh_data_each_time(api, organizer, buyer):
    """Loaders are per operation: on a long-lived socket, a query sees what was sold since
    the last one (they once cached the ticket types for the whole connection)."""
    from tests.factories import buy, checkout, on_sale_event

    event, (general,) = await on_sale_event(api, organizer)
    # The listing reads ticket types through the loader (`event(id)` reads them with the event).
    query = "{ events(first: 1) { edges { node { ticketTypes { quantitySold } } } } }"
    async with api.http.ws_connect("/graphql", protocols=[TRANSPORT_WS]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {organizer}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        assert (await _run(ws, "1", query))["events"]["edges"][0]["node"]["ticketTypes"] == [{"quantitySold": 0}]
        await checkout(api, buyer, event["id"])
        await buy(api, buyer, event["id"], [(general["id"], 3)])  # over HTTP, meanwhile
        assert (await _run(ws, "2", query))["events"]["edges"][0]["node"]["ticketTypes"] == [{"quantitySold": 3}]
