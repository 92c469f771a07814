"""Issue 10: `serve` (production) exposes no developer tools unless asked: GraphiQL,
introspection, and /metrics with its business counters only behind METRICS_TOKEN."""

from __future__ import annotations

from app.config import Settings
from app.server import create_app
from tests.api_client import ApiClient
from tests.conftest import JWT_SECRET

INTROSPECTION = "{ __schema { queryType { name } } }"


async def production_api(aiohttp_client, mongo_uri, **overrides) -> ApiClient:
    settings = Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, _env_file=None, **overrides)
    app = create_app(settings, sweep=False, production=True)
    return ApiClient(await aiohttp_client(app), app)


async def test_production_serves_no_graphiql_no_introspection_and_no_open_metrics(aiohttp_client, mongo_uri):
    api = await production_api(aiohttp_client, mongo_uri)
    page = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status == 404
    assert (await page.json())["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    refused = await api.post(INTROSPECTION)
    assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", refused
    assert (await api.http.get("/metrics")).status == 404
    assert (await api.post("{ events(first: 1) { edges { node { id } } } }"))["data"] is not None  # the API itself works


async def test_metrics_behind_a_token_and_tools_when_asked(aiohttp_client, mongo_uri):
    api = await production_api(aiohttp_client, mongo_uri, metrics_token="t" * 40, graphiql=True, introspection=True)
    assert (await api.http.get("/metrics")).status == 401
    assert (await api.http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    metrics = await api.http.get("/metrics", headers={"Authorization": f"Bearer {'t' * 40}"})
    assert metrics.status == 200 and "ticketing_" in await metrics.text()
    assert (await api.http.get("/graphql", headers={"Accept": "text/html"})).status == 200
    assert (await api.post(INTROSPECTION))["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_development_keeps_its_tools(api):
    """`make run` and the tests: GraphiQL, introspection and /metrics are on."""
    assert (await api.http.get("/graphql", headers={"Accept": "text/html"})).status == 200
    assert "errors" not in await api.post(INTROSPECTION)
    assert (await api.http.get("/metrics")).status == 200
