"""Issue 10: every operation gets a cost before it runs; one over the ceiling is refused with
RATE_LIMITED and its cost, without touching the database (app/api/cost.py)."""

from __future__ import annotations

from app.api.cost import MAX_COST
from app.config import Settings
from app.server import create_app
from tests.api_client import ApiClient
from tests.conftest import JWT_SECRET

SEARCHES = "query($n: Int) { %s }" % " ".join(
    f'a{i}: searchEvents(query: "show", limit: $n) {{ id title venue {{ name }} }}' for i in range(30))


async def counted_api(aiohttp_client, mongo_uri, command_counter) -> ApiClient:
    app = create_app(Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, _env_file=None),
                     db_listeners=[command_counter], sweep=False)
    return ApiClient(await aiohttp_client(app), app)


async def test_thirty_aliased_searches_are_refused_with_their_cost_before_any_read(aiohttp_client, mongo_uri, command_counter):
    """The attack of the review: 30 aliased searchEvents(limit: 100), anonymously, took 8.3 s and
    slowed every other request; now it costs nothing but its refusal."""
    api = await counted_api(aiohttp_client, mongo_uri, command_counter)
    await api.post("{ __typename }")
    command_counter.reset()
    body = await api.post(SEARCHES, {"n": 100})
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    cost = error["extensions"]["cost"]
    assert cost["maximum"] == MAX_COST and cost["requested"] > MAX_COST, cost
    assert "find" not in command_counter.commands and "aggregate" not in command_counter.commands, command_counter.targets


async def test_the_cost_follows_the_sizes_asked_for(api):
    """The same document with small pages fits; lists without an argument count at their ceiling."""
    small = await api.post(SEARCHES, {"n": 2})
    assert "errors" not in small, small
    huge_page = await api.post("{ events(first: 100) { edges { node { id ticketTypes { id } venue { name } } } } }")
    assert "errors" not in huge_page, huge_page  # the biggest ordinary page of the API fits
    nested = await api.post(
        "{ myTickets { event { ticketTypes { id } } } venues { name } "
        "e1: events { edges { node { ticketTypes { id } } } } e2: events { edges { node { ticketTypes { id } } } } }")
    assert nested["errors"][0]["extensions"]["code"] in ("RATE_LIMITED", "UNAUTHENTICATED"), nested


async def test_introspection_is_free_so_graphiql_always_works(api):
    body = await api.post("{ __schema { types { name fields { name args { name } type { name ofType { name } } } } } }")
    assert "errors" not in body and body["data"]["__schema"]["types"]


async def test_the_ceiling_holds_on_websockets_too(api):
    async with api.http.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": SEARCHES, "variables": {"n": 100}}})
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "error", message  # refused before it ran: the protocol's "error"
        assert message["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
