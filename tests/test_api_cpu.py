"""Per-request CPU on the GraphQL path: an identical document is parsed and validated once.

DESIGN section 6: with the limiters passed as `lambda: QueryDepthLimiter(...)`,
every request got new rule classes, so `ValidationCache` (keyed on the rule
classes) never hit and graphql-core's `validate` ran on every request, 55% of
its CPU. These tests count the real work done while the app serves requests
over HTTP:

- `validate`: the graphql-core function Strawberry calls, looked up as
  `strawberry.schema.schema.validate` by `validate_document` (which is what
  `ValidationCache` wraps in its LRU cache), the one our fast path calls
  (`app.api.schema.validate`, behind its own LRU cache), and, to catch any
  other caller of graphql-core's `validate`, every `ValidationContext` it creates;
- `parse`: graphql-core's `Parser.parse_document`, which both Strawberry's own
  parse and `ParserCache`'s cached `parse` end in.

The parser cache is shared by every app in the process, so each test sends
documents no other test sends (a unique operation name).
"""

from __future__ import annotations

import importlib
import uuid
from collections import Counter
from functools import partial

import pytest
from aiohttp import web_ws
import strawberry.schema.schema as strawberry_schema
from graphql.language.parser import Parser

import app.server
from app.api import schema as api_schema
from app.api.view import TicketingGraphQLView
from app.catalog import service as catalog

SENDS = 50
# The module, which `graphql.validation.validate` (the function) shadows as an attribute.
graphql_validate = importlib.import_module("graphql.validation.validate")


class Work:
    """How many times each document text was parsed and validated."""

    def __init__(self) -> None:
        self.parsed: Counter[str] = Counter()
        self.validated: Counter[str] = Counter()  # calls of validate by Strawberry or by our fast path
        self.validation_contexts: Counter[str] = Counter()  # any run of graphql-core's validate


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Work:
    work = Work()

    real_validate = strawberry_schema.validate

    def validate(schema, document, *args, **kwargs):
        work.validated[document.loc.source.body] += 1
        return real_validate(schema, document, *args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", validate)
    monkeypatch.setattr(api_schema, "validate", validate)  # the fast path's own (app/api/schema.py)

    class CountingValidationContext(graphql_validate.ValidationContext):
        def __init__(self, schema, ast, *args, **kwargs) -> None:
            work.validation_contexts[ast.loc.source.body] += 1
            super().__init__(schema, ast, *args, **kwargs)

    monkeypatch.setattr(graphql_validate, "ValidationContext", CountingValidationContext)

    real_parse_document = Parser.parse_document

    def parse_document(self):
        work.parsed[self._lexer.source.body] += 1
        return real_parse_document(self)

    monkeypatch.setattr(Parser, "parse_document", parse_document)
    return work


@pytest.fixture
def list_events_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per call of the `events` resolver's service function (proof that execution ran)."""
    calls: list[int] = []
    real = catalog.list_events

    async def counted(*args, **kwargs):
        calls.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(catalog, "list_events", counted)
    return calls


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:10]}"


async def test_an_identical_document_is_parsed_and_validated_once(api, work, list_events_calls):
    typename = f"query {unique('Typename')} {{ __typename }}"
    events = f"query {unique('Events')} {{ events(first: 1) {{ edges {{ node {{ id title }} }} pageInfo {{ hasNextPage }} }} }}"
    for _ in range(SENDS):
        assert await api.post(typename) == {"data": {"__typename": "Query"}}
        body = await api.post(events)
        assert "errors" not in body, body
        assert body["data"]["events"]["pageInfo"] == {"hasNextPage": False}
    assert len(list_events_calls) == SENDS  # every request still executed
    assert work.parsed == {typename: 1, events: 1}
    assert work.validated == {typename: 1, events: 1}
    assert work.validation_contexts == {typename: 1, events: 1}


async def test_other_variables_with_the_same_document_do_not_revalidate(api, work, list_events_calls):
    query = (
        f"query {unique('EventsPage')}($first: Int!, $city: String) "
        "{ events(first: $first, filter: {city: $city}) { edges { cursor } } }"
    )
    for first in range(1, SENDS + 1):
        body = await api.post(query, {"first": first, "city": f"city-{first}"})
        assert body == {"data": {"events": {"edges": []}}}
    # A variable that cannot be coerced is refused at execution, still without validating again.
    refused = await api.post(query, {"first": "many"})
    assert refused["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert len(list_events_calls) == SENDS
    assert work.parsed == {query: 1}
    assert work.validated == {query: 1}
    assert work.validation_contexts == {query: 1}


async def test_a_refused_document_stays_refused_on_every_send(make_api, work, list_events_calls, monkeypatch):
    """The cache keeps a refused document's errors: it never lets it through on a later send."""
    monkeypatch.setattr(app.server, "build_schema", partial(api_schema.build_schema, max_depth=3))
    api = await make_api()
    name = unique("Deep")
    too_deep = f"query {name} {{ events(first: 1) {{ edges {{ node {{ venue {{ name }} }} }} }} }}"
    within = f"query {name}Ok {{ events(first: 1) {{ edges {{ cursor }} }} }}"
    aliases = f"query {unique('Aliases')} {{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    for _ in range(10):
        deep = await api.post(too_deep)
        assert deep.get("data") is None
        (error,) = deep["errors"]
        assert "exceeds maximum operation depth of 3" in error["message"]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

        many = await api.post(aliases)
        assert many.get("data") is None
        assert "31 aliases found" in many["errors"][0]["message"]
        assert many["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

        assert (await api.post(within)) == {"data": {"events": {"edges": []}}}
    assert len(list_events_calls) == 10  # only the document within the limit ever executed
    # A refused document is validated twice in all, whatever the sends: once by the fast path's
    # check (which then leaves it to Strawberry) and once by Strawberry's path, which answers it.
    assert work.validated == {too_deep: 2, aliases: 2, within: 1}
    assert work.validation_contexts == {too_deep: 2, aliases: 2, within: 1}

    # Too many tokens fails at parse time, which is never cached: refused on every send too.
    huge = f"query {unique('Huge')} {{ " + " ".join("__typename" for _ in range(3000)) + " }"
    for _ in range(3):
        body = await api.post(huge)
        assert body.get("data") is None
        assert "token" in body["errors"][0]["message"].lower()
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert huge not in work.validated


async def test_plain_http_requests_skip_the_websocket_handshake(api, monkeypatch):
    """Strawberry asks twice per request whether it is a websocket; for a plain POST
    the view answers from the Upgrade header instead of trying a handshake."""
    handshakes: list[int] = []
    real = web_ws.WebSocketResponse._handshake

    def handshake(self, request):
        handshakes.append(1)
        return real(self, request)

    monkeypatch.setattr(web_ws.WebSocketResponse, "_handshake", handshake)
    for _ in range(5):
        assert await api.post("{ __typename }") == {"data": {"__typename": "Query"}}
    assert (await api.http.get("/graphql", params={"query": "{ __typename }"})).status == 200
    assert handshakes == []
    async with api.http.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    assert handshakes  # a real upgrade still goes through Strawberry's own check


@pytest.fixture
def strawberry_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One entry per request that took Strawberry's whole `run` (its method and content type)."""
    runs: list[str] = []
    real = TicketingGraphQLView.run

    async def counted(self, request, *args, **kwargs):
        runs.append(f"{request.method} {request.headers.get('Content-Type', '')}")
        return await real(self, request, *args, **kwargs)

    monkeypatch.setattr(TicketingGraphQLView, "run", counted)
    return runs


async def test_a_post_of_a_known_document_is_answered_without_strawberrys_run(api, strawberry_runs):
    """The view's plain path (app/api/view.py `_plain_post`) answers every send of a valid document."""
    query = f"query {unique('Known')}($id: ID!) {{ event(id: $id) {{ id }} __typename }}"
    mutation = f"mutation {unique('Refused')} {{ leaveQueue(eventId: \"x\") {{ errors {{ code }} }} }}"
    answers = []
    for _ in range(3):
        answers.append((await api.post(query, {"id": "000000000000000000000000"}), await api.post(mutation)))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == {"data": {"event": None, "__typename": "Query"}}
    assert answers[0][1]["data"]["leaveQueue"]["errors"][0]["code"] == "UNAUTHENTICATED"
    assert strawberry_runs == []
    # Variables that do not coerce are the executor's to refuse: the plain path still answers.
    refused = await api.post(query, {"id": {"not": "an id"}})
    assert refused["errors"][0]["extensions"]["code"] == "VALIDATION"
    # A document that does not validate is Strawberry's to answer, with the same shape as before.
    invalid = await api.post(f"query {unique('Invalid')} {{ event {{ nope }} }}")
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert strawberry_runs == ["POST application/json"]


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b'{"query": "{ __typename }"', "application/json", 400),  # malformed JSON
    (b'[{"query": "{ __typename }"}]', "application/json", 400),  # a batch
    (b'{"query": "{ __typename }", "variables": [1]}', "application/json", 400),  # variables not an object
    (b'{"query": "{ __typename }", "extensions": {"x": 1}}', "application/json", 200),
    (b"{ __typename }", "application/graphql", 400),
    (b'{"query": "{ __typename }"}', "text/plain", 400),
])
async def test_any_other_post_takes_strawberrys_path(api, strawberry_runs, body, content_type, status):
    assert await api.post("{ __typename }") == {"data": {"__typename": "Query"}}
    strawberry_runs.clear()
    response = await api.http.post("/graphql", data=body, headers={"Content-Type": content_type})
    assert response.status == status, await response.text()
    assert strawberry_runs == [f"POST {content_type}"]
