"""Events stored before the dedupe key named the organizer keep their key: it still guards its
organizer's show, blocks nobody else's, and no start-up rewrites them."""

from __future__ import annotations

from bson import ObjectId

from tests.conftest import CommandCounter
from tests.factories import codes, create_event, create_venue, event_input

WHEN = {"startsAt": "2030-07-15T19:30:00Z", "endsAt": None}


async def _as_the_earlier_version_left_it(api, event_id: str) -> str:
    """Put the event back on the key it would hold from before issue 10 (`artist:venue:start:slug`)."""
    doc = await api.db.events.find_one({"_id": ObjectId(event_id)})
    key = doc["dedupeKey"].removeprefix(f"{doc['organizerId']}:")
    await api.db.events.update_one({"_id": doc["_id"]}, {"$set": {"dedupeKey": key}})
    return key


async def test_a_legacy_key_guards_its_organizers_show_and_blocks_nobody_else(make_api, organizer, other_organizer):
    api = await make_api()
    venue = await create_venue(api, organizer)
    mine = await create_event(api, organizer, venue["id"], **WHEN)
    legacy = await _as_the_earlier_version_left_it(api, mine["id"])
    assert legacy.startswith("artist-beyonce:")

    show = {"input": event_input(venue["id"], **WHEN)}
    assert codes(await api.mutate("CreateEvent", show, organizer)) == ["DUPLICATE_EVENT"]
    assert (await api.ok("CreateEvent", show, other_organizer))["event"]["id"]
    assert await api.db.events.count_documents({}) == 2
    assert (await api.db.events.find_one({"_id": ObjectId(mine["id"])}))["dedupeKey"] == legacy


async def test_a_start_reads_no_event(make_api, organizer):
    """No migration at start-up: at 100,000 events rewriting every key took over twenty minutes."""
    api = await make_api()
    venue = await create_venue(api, organizer)
    event = await create_event(api, organizer, venue["id"], **WHEN)
    legacy = await _as_the_earlier_version_left_it(api, event["id"])
    counter = CommandCounter()
    await make_api(db_listeners=(counter,))
    assert not [t for t in counter.targets if t.split()[-1] == "events" and t.split()[0] not in ("createIndexes", "listIndexes")], counter.targets
    assert (await api.db.events.find_one({"_id": ObjectId(event["id"])}))["dedupeKey"] == legacy
