"""Schemathesis against the running app: queries and mutations generated from the live schema
(read by introspection), valid ones and ones the schema refuses, sent as an organizer, a
buyer, staff and anonymously, with a fixed budget (the same cases every run: derandomized).

No answer may be a 5xx; every error carries `extensions.code` and none is
INTERNAL_SERVER_ERROR; the server logs nothing at error level (no traceback). The app runs
in a thread of its own, with its own event loop, as a real server: Schemathesis calls it
through `requests`, synchronously.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis import GenerationMode
from schemathesis.graphql import nodes

from app.config import Settings
from app.server import create_app
from tests.api_client import document
from tests.conftest import JWT_SECRET, make_token
from tests.factories import event_input, ticket_type_input, venue_input

# Cases, each sent as every persona; FUZZ_EXAMPLES=2000 for a longer hunt by hand.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
INTERNAL = "INTERNAL_SERVER_ERROR"

# DateTime: well-formed instants around now (to reach the rules behind the parser), and junk.
_instants = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(_instants.map(lambda d: d.isoformat().replace("+00:00", "Z")), st.text(max_size=40)).map(nodes.String),
)


class ServedApp:
    """The app on a real port, in a thread with its own loop."""

    def __init__(self, app_settings: Settings) -> None:
        self.settings = app_settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> ServedApp:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self.runner = web.AppRunner(create_app(self.settings, sweep=False))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/graphql"

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class ServerFaults(logging.Handler):
    """Whatever the server logs at error level, or with a traceback, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def faults() -> Iterator[ServerFaults]:
    handler = ServerFaults()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture
def served(mongo_uri: str) -> Iterator[ServedApp]:
    # Rate limits off: a refusal for spending is typed, but would leave most cases untried.
    app_settings = Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, rate_limit_per_second=1e9,
                            rate_limit_burst=1e9, _env_file=None)
    with ServedApp(app_settings) as served_app:
        yield served_app


def _post(url: str, name: str, variables: dict, token: str) -> dict:
    body = requests.post(url, json={"query": document(name), "variables": variables},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert not body.get("errors"), body
    (payload,) = body["data"].values()
    assert not payload.get("errors"), payload
    return payload


def _seed(url: str, organizer: str) -> None:
    """A venue and an event on sale, so that lists and searches resolve nested fields too."""
    venue = _post(url, "CreateVenue", {"input": venue_input()}, organizer)["venue"]
    event = _post(url, "CreateEvent", {"input": event_input(venue["id"])}, organizer)["event"]
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    _post(url, "CreateTickets", {"input": {"eventId": event["id"], "ticketTypes": [
        ticket_type_input(), ticket_type_input(type="VIP", saleEndsAt=soon)]}}, organizer)


def _faults_of(response: requests.Response) -> list[str]:
    """What is wrong with one answer, if anything."""
    if response.status_code >= 500:
        return [f"status {response.status_code}: {response.text[:300]}"]
    try:
        body = response.json()
    except ValueError:
        return [f"status {response.status_code}, not JSON: {response.text[:300]}"]
    problems = []
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code is None or code == INTERNAL:
            problems.append(f"error without a typed code: {error}")
    return problems


def _fuzz(url: str, cases: st.SearchStrategy, personas: dict[str, str | None], examples: int) -> list[str]:
    """Send `examples` generated cases, each as one persona; what was wrong with the answers."""
    session = requests.Session()
    found: list[str] = []

    @given(case=cases, who=st.sampled_from(sorted(personas)))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def one_case(case, who: str) -> None:
        token = personas[who]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(base_url=url.removesuffix("/graphql"), session=session, headers=headers)
        found.extend(f"{who} {case.operation.label}: {p}\n{case.body}" for p in _faults_of(response))

    one_case()
    return found


def test_generated_operations_get_typed_answers_and_log_no_fault(served, faults, organizer, buyer):
    _seed(served.url, organizer)
    schema = schemathesis.graphql.from_url(served.url)
    cases = st.one_of(schema.as_strategy(), schema.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    personas = {"organizer": organizer, "buyer": buyer, "staff": make_token("staff-1", "staff"), "anonymous": None}
    found = _fuzz(served.url, cases, personas, EXAMPLES)
    assert found == [], "\n\n".join(found[:5])
    assert faults.records == [], faults.records[:5]


def test_the_fuzzer_sees_a_fault_when_there_is_one(served, faults, monkeypatch):
    """The harness itself: a resolver that breaks is reported, as an answer and in the log."""
    from app.catalog import service as catalog

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(catalog, "list_venues", broken)
    schema = schemathesis.graphql.from_url(served.url)
    found = _fuzz(served.url, schema["Query"]["venues"].as_strategy(), {"anonymous": None}, 5)
    assert found and all(INTERNAL in f for f in found), found
    assert any("a bug" in r for r in faults.records), faults.records
