"""Issue 10: bad input is a VALIDATION refusal, never an internal error, and never stored.

Each test sends what the outside review sent: lone surrogates, control and bidi
characters, absurd timezones, JSON nested a thousand deep.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.factories import create_venue

LONE_SURROGATE = "\ud800"
BIDI_OVERRIDE = "\u202e"


def codes_of(body: dict) -> list[str]:
    """Every code in a response: top-level errors' and payload UserErrors'."""
    found = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    for value in (body.get("data") or {}).values():
        if isinstance(value, dict):
            found += [e["code"] for e in value.get("errors") or []]
    return found


async def post_raw(api, text: str, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    response = await api.http.post("/graphql", data=text.encode("utf-8", "surrogatepass"), headers=headers)
    body = await response.text()
    return response.status, json.loads(body)


VENUE = "mutation($input: CreateVenueInput!) { createVenue(input: $input) { venue { id } errors { code field } } }"


@pytest.mark.parametrize("bad", [LONE_SURROGATE, "a\u0000b", f"Hall {BIDI_OVERRIDE}llaH", "x" * 100_000])
async def test_a_bad_string_in_a_mutation_is_refused_and_nothing_is_stored(api, organizer, bad, caplog):
    variables = {"input": {"name": bad, "address": "1 Road", "city": "Oslo", "country": "NO", "timezone": "Europe/Oslo"}}
    text = json.dumps({"query": VENUE, "variables": variables}, ensure_ascii=True)
    with caplog.at_level(logging.DEBUG):
        status, body = await post_raw(api, text, organizer)
    assert status in (200, 400), body
    assert codes_of(body) and set(codes_of(body)) <= {"VALIDATION"}, body
    assert await api.db.venues.count_documents({}) == 0
    assert "Traceback" not in caplog.text
    assert all(len(r.getMessage()) < 2_000 for r in caplog.records), "a whole value went into the log"


@pytest.mark.parametrize("bad", [LONE_SURROGATE, "a\u0000b", BIDI_OVERRIDE])
async def test_a_bad_string_in_an_anonymous_search_literal_is_refused(api, bad):
    literal = json.dumps(f"rock {bad}", ensure_ascii=True)
    text = json.dumps({"query": "{ searchEvents(query: %s) { id } }" % literal}, ensure_ascii=True)
    status, body = await post_raw(api, text)
    assert status in (200, 400), body
    # A surrogate escaped in GraphQL's own syntax does not even parse: refused just as cleanly.
    assert codes_of(body) and set(codes_of(body)) <= {"VALIDATION", "GRAPHQL_PARSE_FAILED"}, body


@pytest.mark.parametrize("zone", ["America", "x" * 200_000, "../../etc/passwd", "Europe/" + LONE_SURROGATE])
async def test_any_timezone_value_is_a_clean_validation(api, organizer, zone, caplog):
    variables = {"input": {"name": "Hall", "address": "1 Road", "city": "Oslo", "country": "NO", "timezone": zone}}
    text = json.dumps({"query": VENUE, "variables": variables}, ensure_ascii=True)
    with caplog.at_level(logging.DEBUG):
        status, body = await post_raw(api, text, organizer)
    assert codes_of(body) and set(codes_of(body)) <= {"VALIDATION"}, str(body)[:500]
    assert "Traceback" not in caplog.text
    assert all(len(r.getMessage()) < 2_000 for r in caplog.records), "a whole value went into the log"


async def test_variables_nested_a_thousand_deep_are_a_400_in_graphql_shape(api):
    deep = "[" * 1000 + "]" * 1000
    text = '{"query": "query($v: [String]) { __typename }", "variables": {"v": %s}}' % deep
    status, body = await post_raw(api, text)
    assert status == 400, body
    assert body["errors"][0]["extensions"]["code"] in ("BAD_REQUEST", "VALIDATION"), body


async def test_variables_nested_a_thousand_deep_on_a_websocket_close_it_cleanly(api):
    deep = "[" * 1000 + "]" * 1000
    async with api.http.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_str('{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", "variables": {"v": %s}}}' % deep)
        message = await ws.receive(timeout=5)
        assert message.type.name == "CLOSE", message
        assert message.data == 4400, message


async def test_ordinary_text_with_newlines_tabs_and_accents_is_kept(api, organizer):
    venue = await create_venue(api, organizer, name="Café Øst\tHall", address="Line 1\nLine 2")
    assert venue["name"] == "Café Øst\tHall"
