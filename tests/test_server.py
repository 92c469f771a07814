"""HTTP surface: health, readiness, GraphiQL offline, error hygiene, request limits, CORS."""

from __future__ import annotations

import re

from app.catalog import service as catalog
from app.config import Settings
from app.embedded import start_mongo
from app.api.schema import build_schema
from app.server import create_app
from tests.conftest import JWT_SECRET


async def test_healthz_and_readyz(api):
    assert (await api.http.get("/healthz")).status == 200
    ready = await api.http.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"]["database"] == "ok"


async def test_readyz_reports_an_unreachable_database(aiohttp_client, tmp_path):
    server = start_mongo(tmp_path / "db", durable=False)
    app = create_app(Settings(mongodb_uri=server.uri("ready"), jwt_secret=JWT_SECRET))
    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    server.kill()
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"]["database"] == "unreachable"
    assert (await client.get("/healthz")).status == 200


async def test_graphiql_page_loads_every_asset_from_the_app(api):
    page = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status == 200
    html = await page.text()
    assert "graphiql" in html.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 6
    assert not [a for a in assets if "://" in a or a.startswith("//")], "no asset may come from another host"
    for asset in assets:
        response = await api.http.get(asset)
        assert response.status == 200, asset
        body = await response.read()
        assert len(body) > 500, asset
    # The page wires subscriptions through graphql-ws, authenticating in connection_init.
    assert "graphqlWs.createClient" in html and "connectionParams" in html


async def test_get_with_a_query_executes_it_instead_of_opening_graphiql(api):
    response = await api.http.get("/graphql", params={"query": "{ __typename }"})
    assert response.status == 200
    assert (await response.json())["data"] == {"__typename": "Query"}


async def test_an_internal_fault_is_masked_and_coded(api, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("connection string mongodb://secret@host leaked")

    monkeypatch.setattr(catalog, "list_events", broken)
    body = await api.op("Events", {})
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret" not in str(body)


async def test_malformed_requests_keep_readable_messages_with_codes(api):
    syntax = await api.post("{ events { edges ")
    assert syntax["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "Syntax Error" in syntax["errors"][0]["message"]
    unknown = await api.post("{ nope }")
    assert unknown["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "nope" in unknown["errors"][0]["message"]
    bad_variable = await api.post("query($f: EventFilter) { events(filter: $f) { edges { cursor } } }", {"f": {"startsAfter": "soon"}})
    assert bad_variable["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert "soon" in bad_variable["errors"][0]["message"]


async def test_query_depth_is_limited():
    schema = build_schema(max_depth=3)
    within = await schema.execute("{ __typename events { edges { cursor } } }")
    assert not any("depth" in e.message for e in within.errors or [])
    beyond = await schema.execute("{ events { edges { node { venue { name } } } } }")
    assert beyond.data is None
    assert "exceeds maximum operation depth of 3" in beyond.errors[0].message
    assert beyond.errors[0].extensions["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_aliases_and_size_are_limited(api):
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    body = await api.post(aliases)
    assert "aliases" in body["errors"][0]["message"].lower()
    huge = "{ " + " ".join("__typename" for _ in range(3000)) + " }"
    body = await api.post(huge)
    assert "token" in body["errors"][0]["message"].lower()
    assert body["errors"][0]["extensions"]["code"]


async def test_cors_allows_only_listed_origins(aiohttp_client, mongo_uri):
    app = create_app(Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, cors_origins="http://localhost:3000, https://app.example"))
    client = await aiohttp_client(app)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = await client.options("/graphql", headers={"Origin": "http://localhost:3000", **preflight})
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Authorization" in ok.headers["Access-Control-Allow-Headers"]
    refused = await client.options("/graphql", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status == 403
    post = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://app.example"})
    assert post.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_refused_http_requests_answer_json_with_a_code(api):
    unknown_name = await api.http.post("/graphql", json={"query": "{ __typename }", "operationName": "Nope"})
    assert unknown_name.status == 400
    assert (await unknown_name.json())["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    not_json = await api.http.post("/graphql", data="{not json", headers={"Content-Type": "application/json"})
    assert not_json.status == 400
    assert (await not_json.json())["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    mutation_over_get = await api.http.get("/graphql", params={"query": "mutation { __typename }"})
    assert mutation_over_get.status in (400, 405)
    assert (await mutation_over_get.json())["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
