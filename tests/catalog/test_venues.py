"""createVenue / updateVenue / venue / venues, and auth on mutations."""

from __future__ import annotations

import pytest

from tests.conftest import make_token
from tests.factories import create_event, create_venue, venue_input


async def test_create_venue_returns_it_and_it_can_be_read(api, organizer):
    venue = await create_venue(api, organizer)
    assert venue["name"] == "Wembley Stadium"
    assert venue["timezone"] == "Europe/London"
    assert venue["createdAt"].endswith("Z")
    read = (await api.data("Venue", {"id": venue["id"]}))["venue"]
    assert read == venue


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "input.timezone"),
        ({"timezone": "../../etc/passwd"}, "input.timezone"),
        ({"name": ""}, "input.name"),
        ({"name": "   "}, "input.name"),
        ({"name": "x" * 201}, "input.name"),
        ({"city": ""}, "input.city"),
        ({"latitude": 90.5}, "input.latitude"),
        ({"latitude": -91.0}, "input.latitude"),
        ({"longitude": 180.01}, "input.longitude"),
        ({"longitude": -200.0}, "input.longitude"),
        ({"capacity": -1}, "input.capacity"),
    ],
)
async def test_create_venue_rejects_bad_input_naming_the_field(api, organizer, overrides, field):
    payload = await api.mutate("CreateVenue", {"input": venue_input(**overrides)}, organizer)
    assert payload["venue"] is None
    assert {"code": "VALIDATION", "field": field} in [{"code": e["code"], "field": e["field"]} for e in payload["errors"]]
    assert await api.db.venues.count_documents({}) == 0


async def test_create_venue_accepts_the_edges_of_each_range(api, organizer):
    venue = await create_venue(api, organizer, latitude=-90.0, longitude=180.0, capacity=0, name="x" * 200)
    assert (venue["latitude"], venue["longitude"], venue["capacity"]) == (-90.0, 180.0, 0)


async def test_mutations_need_a_valid_organizer_token(api, buyer):
    expired = make_token("org-1", "organizer", ttl=-10)
    forged = make_token("org-1", "organizer", secret="not-the-server-secret-at-all-no-no")
    cases = [(None, "UNAUTHENTICATED"), (buyer, "FORBIDDEN"), (expired, "UNAUTHENTICATED"), (forged, "UNAUTHENTICATED")]
    for token, code in cases:
        payload = await api.mutate("CreateVenue", {"input": venue_input()}, token)
        assert payload["venue"] is None
        assert [e["code"] for e in payload["errors"]] == [code], (token, payload)
    assert await api.db.venues.count_documents({}) == 0


async def test_a_malformed_authorization_header_is_unauthenticated(api):
    body = await api.post(
        "mutation($i: CreateVenueInput!) { createVenue(input: $i) { errors { code message } } }",
        {"i": venue_input()},
        Authorization="Token abc",
    )
    assert body["data"]["createVenue"]["errors"][0]["code"] == "UNAUTHENTICATED"


async def test_admin_may_do_what_an_organizer_may(api):
    admin = make_token("root", "admin")
    assert (await create_venue(api, admin))["name"] == "Wembley Stadium"


async def test_venue_edit_does_not_change_an_existing_events_snapshot(api, organizer):
    venue = await create_venue(api, organizer)
    event = await create_event(api, organizer, venue["id"])
    updated = await api.ok("UpdateVenue", {"id": venue["id"], "input": {"name": "New Name Arena", "city": "Brent"}}, organizer)
    assert updated["venue"]["name"] == "New Name Arena"
    read = (await api.data("Event", {"id": event["id"]}))["event"]
    assert read["venue"]["name"] == "Wembley Stadium"
    assert read["venue"]["city"] == "London"
    assert read["venue"]["venueId"] == venue["id"]


async def test_only_the_venues_organizer_may_edit_it(api, organizer, other_organizer):
    venue = await create_venue(api, organizer)
    payload = await api.mutate("UpdateVenue", {"id": venue["id"], "input": {"name": "Mine now"}}, other_organizer)
    assert [e["code"] for e in payload["errors"]] == ["FORBIDDEN"]


async def test_update_venue_validates_given_fields(api, organizer):
    venue = await create_venue(api, organizer)
    payload = await api.mutate("UpdateVenue", {"id": venue["id"], "input": {"timezone": "Nowhere/Land"}}, organizer)
    assert payload["errors"][0]["field"] == "input.timezone"
    assert (await api.data("Venue", {"id": venue["id"]}))["venue"]["timezone"] == "Europe/London"


async def test_unknown_or_malformed_venue_ids(api, organizer):
    assert (await api.data("Venue", {"id": "not-an-id"}))["venue"] is None
    assert (await api.data("Venue", {"id": "0" * 24}))["venue"] is None
    payload = await api.mutate("UpdateVenue", {"id": "nope", "input": {"name": "x"}}, organizer)
    assert [e["code"] for e in payload["errors"]] == ["NOT_FOUND"]


async def test_venues_lists_by_city(api, organizer):
    await create_venue(api, organizer, name="A", city="Paris", timezone="Europe/Paris")
    await create_venue(api, organizer, name="B", city="London")
    paris = (await api.data("Venues", {"city": "Paris"}))["venues"]
    assert [v["name"] for v in paris] == ["A"]
    assert len((await api.data("Venues", {}))["venues"]) == 2
    body = await api.op("Venues", {"first": 101})
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
