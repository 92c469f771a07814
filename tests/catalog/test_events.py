"""createEvent (M1) and event (Q2): the venue snapshot, local times, validation, dedupe and auth."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from bson import ObjectId

from tests.conftest import make_token
from tests.factories import create_event, create_venue, days_from_now, event_input, iso


async def _events_written(api) -> int:
    return await api.db.events.count_documents({})


async def test_create_event_snapshots_the_venue_and_reads_back(api, organizer):
    venue = await create_venue(api, organizer)
    payload = await api.ok("CreateEvent", {"input": event_input(venue["id"])}, organizer)
    event = payload["event"]
    assert event["title"] == "Renaissance World Tour"
    assert event["description"] == "Live in concert."
    assert event["artistId"] == "artist-beyonce"
    assert event["artistName"] == "Beyoncé"
    assert event["venue"] == {
        "venueId": venue["id"], "name": venue["name"], "address": venue["address"], "city": venue["city"],
        "country": venue["country"], "timezone": venue["timezone"],
    }
    assert event["timezone"] == "Europe/London"
    assert event["status"] == "UPCOMING"
    assert event["ticketsRemaining"] == 0
    assert event["startsAt"].endswith("Z") and event["endsAt"].endswith("Z") and event["createdAt"].endswith("Z")

    read = (await api.data("Event", {"id": event["id"]}))["event"]
    assert read["ticketTypes"] == []
    assert {k: v for k, v in read.items() if k != "ticketTypes"} == event
    assert await _events_written(api) == 1


async def test_event_times_cross_the_api_in_utc_and_local_in_the_venue_zone(api, organizer):
    london = await create_venue(api, organizer)
    new_york = await create_venue(
        api, organizer, name="Madison Square Garden", address="4 Pennsylvania Plaza", city="New York",
        country="US", timezone="America/New_York", latitude=40.7505, longitude=-73.9934,
    )
    # Summer: London is UTC+1, New York UTC-4. The input carries a +01:00 offset, not "Z".
    summer = {"startsAt": "2030-07-15T20:30:00+01:00", "endsAt": "2030-07-15T23:00:00+01:00"}
    # Winter: London is UTC+0, New York UTC-5.
    winter = {"startsAt": "2030-01-15T19:30:00Z", "endsAt": None}
    cases = [
        (london, summer, "2030-07-15T19:30:00.000Z", "2030-07-15T20:30:00+01:00"),
        (new_york, summer, "2030-07-15T19:30:00.000Z", "2030-07-15T15:30:00-04:00"),
        (london, winter, "2030-01-15T19:30:00.000Z", "2030-01-15T19:30:00+00:00"),
        (new_york, winter, "2030-01-15T19:30:00.000Z", "2030-01-15T14:30:00-05:00"),
    ]
    for venue, times, starts_at, local in cases:
        event = await create_event(api, organizer, venue["id"], title=f"Show {local}", **times)
        read = (await api.data("Event", {"id": event["id"]}))["event"]
        assert read["startsAt"] == starts_at, (venue["timezone"], read)
        assert read["startsAtLocal"] == local, (venue["timezone"], read)
        assert read["timezone"] == venue["timezone"]
        assert read["venue"]["timezone"] == venue["timezone"]
    london_events = (await api.data("Events", {"filter": {"city": "London"}}))["events"]["edges"]
    assert len(london_events) == 2


async def test_ends_at_is_optional_and_a_blank_description_is_null(api, organizer):
    event = await create_event(api, organizer, endsAt=None, description="   ")
    assert event["endsAt"] is None
    assert event["description"] is None


async def test_create_event_accepts_the_edges_of_each_length(api, organizer):
    event = await create_event(api, organizer, title="t" * 200, description="d" * 5000)
    assert len(event["title"]) == 200
    assert len(event["description"]) == 5000


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title": ""}, "input.title"),
        ({"title": "   "}, "input.title"),
        ({"title": "x" * 201}, "input.title"),
        ({"description": "x" * 5001}, "input.description"),
        ({"artistName": ""}, "input.artistName"),
        ({"artistName": "  "}, "input.artistName"),
        ({"artistId": ""}, "input.artistId"),
        ({"startsAt": "2027-03-01T19:30:00", "endsAt": None}, "input.startsAt"),
        ({"startsAt": "2030-03-01T19:30:00Z", "endsAt": "2030-03-01T22:30:00"}, "input.endsAt"),
        ({"startsAt": "2030-03-01T19:30:00Z", "endsAt": "2030-03-01T18:30:00Z"}, "input.endsAt"),
        ({"startsAt": "2030-03-01T19:30:00Z", "endsAt": "2030-03-01T19:30:00Z"}, "input.endsAt"),
        ({"startsAt": iso(days_from_now(-1)), "endsAt": None}, "input.startsAt"),
        ({"startsAt": iso(days_from_now(-1)), "endsAt": iso(days_from_now(1))}, "input.startsAt"),
    ],
)
async def test_create_event_rejects_bad_input_naming_the_field(api, organizer, overrides, field):
    venue = await create_venue(api, organizer)
    payload = await api.mutate("CreateEvent", {"input": event_input(venue["id"], **overrides)}, organizer)
    assert payload["event"] is None
    assert {"code": "VALIDATION", "field": field} in [{"code": e["code"], "field": e["field"]} for e in payload["errors"]]
    assert all(e["code"] == "VALIDATION" and e["message"] for e in payload["errors"]), payload["errors"]
    assert await _events_written(api) == 0


async def test_every_problem_of_an_input_is_reported_at_once(api, organizer):
    venue = await create_venue(api, organizer)
    bad = event_input(venue["id"], title="", artistName="", startsAt="2030-03-01T19:30:00", endsAt=None)
    payload = await api.mutate("CreateEvent", {"input": bad}, organizer)
    assert payload["event"] is None
    assert {e["field"] for e in payload["errors"]} == {"input.title", "input.artistName", "input.startsAt"}
    assert await _events_written(api) == 0


@pytest.mark.parametrize("venue_id", ["0" * 24, "5f9d1c2e8b3a4d6e7f801234", "nope", "", "x" * 24, "'; drop"])
async def test_unknown_or_malformed_venue_is_not_found(api, organizer, venue_id):
    await create_venue(api, organizer)
    payload = await api.mutate("CreateEvent", {"input": event_input(venue_id)}, organizer)
    assert payload["event"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("NOT_FOUND", "input.venueId")]
    assert await _events_written(api) == 0


@pytest.mark.parametrize("value", ["not a date", "2030-13-45T25:61:00Z", "", "tomorrow"])
async def test_a_string_that_is_no_datetime_is_a_top_level_validation_error(api, organizer, value):
    venue = await create_venue(api, organizer)
    body = await api.op("CreateEvent", {"input": event_input(venue["id"], startsAt=value)}, organizer)
    assert body.get("data") is None
    assert body["errors"], body
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert "Internal server error" not in body["errors"][0]["message"]
    assert await _events_written(api) == 0


async def test_a_datetime_that_is_not_a_string_is_a_top_level_validation_error(api, organizer):
    venue = await create_venue(api, organizer)
    body = await api.op("CreateEvent", {"input": event_input(venue["id"], startsAt=1893456000000)}, organizer)
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert await _events_written(api) == 0


async def test_same_artist_venue_start_and_title_is_a_duplicate(api, organizer):
    venue = await create_venue(api, organizer)
    first = event_input(venue["id"])
    await api.ok("CreateEvent", {"input": first}, organizer)
    payload = await api.mutate("CreateEvent", {"input": first}, organizer)
    assert payload["event"] is None
    assert [e["code"] for e in payload["errors"]] == ["DUPLICATE_EVENT"]
    assert await _events_written(api) == 1


async def test_the_title_slug_ignores_case_punctuation_and_spacing(api, organizer):
    venue = await create_venue(api, organizer)
    first = event_input(venue["id"], title="Renaissance World Tour!")
    await api.ok("CreateEvent", {"input": first}, organizer)
    for title in ["renaissance world tour", "RENAISSANCE — World   Tour...", "  Renaissance, World, Tour  "]:
        payload = await api.mutate("CreateEvent", {"input": first | {"title": title}}, organizer)
        assert payload["event"] is None, title
        assert [e["code"] for e in payload["errors"]] == ["DUPLICATE_EVENT"], (title, payload)
    assert await _events_written(api) == 1


async def test_the_same_instant_written_with_another_offset_is_still_a_duplicate(api, organizer):
    venue = await create_venue(api, organizer)
    await api.ok("CreateEvent", {"input": event_input(venue["id"], startsAt="2030-07-15T19:30:00Z", endsAt=None)}, organizer)
    payload = await api.mutate(
        "CreateEvent", {"input": event_input(venue["id"], startsAt="2030-07-15T20:30:00+01:00", endsAt=None)}, organizer
    )
    assert [e["code"] for e in payload["errors"]] == ["DUPLICATE_EVENT"]
    assert await _events_written(api) == 1


async def test_a_different_start_artist_venue_or_title_is_not_a_duplicate(api, organizer):
    venue = await create_venue(api, organizer)
    other_venue = await create_venue(api, organizer, name="The O2")
    base = event_input(venue["id"], startsAt="2030-07-15T19:30:00Z", endsAt=None)
    await api.ok("CreateEvent", {"input": base}, organizer)
    variants = [
        {"startsAt": "2030-07-16T19:30:00Z"},
        {"startsAt": "2030-07-15T19:30:01Z"},
        {"artistId": "artist-jay-z"},
        {"venueId": other_venue["id"]},
        {"title": "Renaissance World Tour II"},
    ]
    for change in variants:
        event = (await api.ok("CreateEvent", {"input": base | change}, organizer))["event"]
        assert event["id"], change
    assert await _events_written(api) == 1 + len(variants)


async def test_concurrent_identical_creates_make_one_event(api, organizer):
    venue = await create_venue(api, organizer)
    for round_ in range(5):
        variables = {"input": event_input(venue["id"], title=f"Race night {round_}")}
        bodies = await asyncio.gather(*(api.op("CreateEvent", variables, organizer) for _ in range(2)))
        for body in bodies:
            assert not body.get("errors"), body["errors"]
        payloads = [body["data"]["createEvent"] for body in bodies]
        assert sorted(len(p["errors"]) for p in payloads) == [0, 1], payloads
        refused = next(p for p in payloads if p["errors"])
        assert refused["event"] is None
        assert [e["code"] for e in refused["errors"]] == ["DUPLICATE_EVENT"]
    assert await _events_written(api) == 5


async def test_two_organizers_may_publish_the_same_show_at_one_venue(api, organizer, other_organizer):
    """Issue 10, finding 6: orgB publishing orgA's show first used to make orgA's own DUPLICATE_EVENT."""
    venue = await create_venue(api, organizer)
    show = {"input": event_input(venue["id"])}
    theirs = (await api.ok("CreateEvent", show, other_organizer))["event"]
    mine = (await api.ok("CreateEvent", show, organizer))["event"]
    assert mine["id"] != theirs["id"]
    for token in (organizer, other_organizer):
        payload = await api.mutate("CreateEvent", show, token)
        assert payload["event"] is None
        assert [e["code"] for e in payload["errors"]] == ["DUPLICATE_EVENT"]
    owners = sorted([d["organizerId"] async for d in api.db.events.find({}, projection={"organizerId": 1})])
    assert owners == ["org-1", "org-2"]


async def test_concurrent_creates_of_one_show_give_one_event_per_organizer(api, organizer, other_organizer):
    venue = await create_venue(api, organizer)
    show = {"input": event_input(venue["id"])}
    bodies = await asyncio.gather(*(api.op("CreateEvent", show, token) for token in [organizer, other_organizer] * 3))
    payloads = [body["data"]["createEvent"] for body in bodies]
    created = [p["event"]["id"] for p in payloads if p["event"]]
    refused = [e["code"] for p in payloads for e in p["errors"]]
    assert len(created) == 2 and refused == ["DUPLICATE_EVENT"] * 4, payloads
    owners = sorted([d["organizerId"] async for d in api.db.events.find({}, projection={"organizerId": 1})])
    assert owners == ["org-1", "org-2"]


async def test_event_is_null_for_unknown_and_malformed_ids(api, organizer):
    await create_event(api, organizer)
    for event_id in ["0" * 24, "5f9d1c2e8b3a4d6e7f801234", "not-an-id", "", "x" * 24, "abcdefghijkl"]:
        body = await api.op("Event", {"id": event_id})
        assert not body.get("errors"), (event_id, body)
        assert body["data"]["event"] is None, event_id


async def test_a_venue_id_is_not_an_event_id(api, organizer):
    venue = await create_venue(api, organizer)
    assert (await api.data("Event", {"id": venue["id"]}))["event"] is None


async def test_create_event_needs_an_organizer(api, organizer, buyer):
    venue = await create_venue(api, organizer)
    staff = make_token("staff-1", "staff")
    expired = make_token("org-1", "organizer", ttl=-10)
    forged = make_token("org-1", "organizer", secret="not-the-server-secret-at-all-no-no")
    cases = [(None, "UNAUTHENTICATED"), (buyer, "FORBIDDEN"), (staff, "FORBIDDEN"), (expired, "UNAUTHENTICATED"),
             (forged, "UNAUTHENTICATED")]
    for token, code in cases:
        payload = await api.mutate("CreateEvent", {"input": event_input(venue["id"])}, token)
        assert payload["event"] is None
        assert [e["code"] for e in payload["errors"]] == [code], (token, payload)
        assert await _events_written(api) == 0


async def test_auth_is_checked_before_the_input(api, organizer):
    venue = await create_venue(api, organizer)
    payload = await api.mutate("CreateEvent", {"input": event_input(venue["id"], title="")}, None)
    assert [e["code"] for e in payload["errors"]] == ["UNAUTHENTICATED"]
    payload = await api.mutate("CreateEvent", {"input": event_input("nope")}, make_token("buyer-1"))
    assert [e["code"] for e in payload["errors"]] == ["FORBIDDEN"]
    assert await _events_written(api) == 0


async def test_any_organizer_may_create_events_at_any_venue_and_admins_too(api, organizer, other_organizer):
    venue = await create_venue(api, organizer)
    mine = await create_event(api, organizer, venue["id"])
    theirs = await create_event(api, other_organizer, venue["id"], title="Another Show")
    admin = await create_event(api, make_token("root", "admin"), venue["id"], title="Admin Show")
    assert mine["venue"]["venueId"] == theirs["venue"]["venueId"] == admin["venue"]["venueId"] == venue["id"]
    assert await _events_written(api) == 3


async def test_stored_event_keeps_utc_milliseconds_and_a_dedupe_key(api, organizer):
    venue = await create_venue(api, organizer)
    event = await create_event(
        api, organizer, venue["id"], title="Renaissance World Tour!",
        startsAt="2030-07-15T20:30:00+01:00", endsAt="2030-07-15T23:30:00+01:00",
    )
    doc = await api.db.events.find_one({"_id": ObjectId(event["id"])})
    assert doc["startAtUtc"] == 1910374200000
    assert doc["endAtUtc"] == 1910374200000 + int(timedelta(hours=3).total_seconds() * 1000)
    assert doc["status"] == "UPCOMING"
    assert doc["dedupeKey"] == f"org-1:artist-beyonce:{venue['id']}:1910374200000:renaissance-world-tour"
    assert doc["venue"]["name"] == "Wembley Stadium"
