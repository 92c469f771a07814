"""Start-up moves events keyed before the organizer was in the dedupe key onto the new key, once."""

from __future__ import annotations

from bson import ObjectId

from tests.conftest import CommandCounter
from tests.factories import create_event, create_venue, event_input

MIGRATION = "events.dedupeKey.organizer"
WHEN = {"startsAt": "2030-07-15T19:30:00Z", "endsAt": None}


async def _as_the_earlier_version_left_it(api) -> dict[str, str]:
    """Put every event back on the old key (`artist:venue:start:slug`) and forget the migration ran."""
    old = {}
    async for doc in api.db.events.find({}):
        key = doc["dedupeKey"].removeprefix(f"{doc['organizerId']}:")
        await api.db.events.update_one({"_id": doc["_id"]}, {"$set": {"dedupeKey": key}})
        old[str(doc["_id"])] = key
    await api.db.migrations.delete_many({})
    return old


async def test_start_up_puts_the_organizer_into_old_keys_once(make_api, organizer, other_organizer):
    first = await make_api()
    venue = await create_venue(first, organizer)
    mine = await create_event(first, organizer, venue["id"], **WHEN)
    other = await create_event(first, organizer, venue["id"], title="Another Night", **WHEN)
    old = await _as_the_earlier_version_left_it(first)
    assert old[mine["id"]].startswith("artist-beyonce:")

    upgraded = await make_api()
    keys = {str(d["_id"]): d["dedupeKey"] async for d in upgraded.db.events.find({})}
    assert keys == {mine["id"]: f"org-1:{old[mine['id']]}", other["id"]: f"org-1:{old[other['id']]}"}
    assert await upgraded.db.migrations.count_documents({"_id": MIGRATION}) == 1

    # The organizer's show is still guarded; another organizer is no longer blocked by it.
    show = {"input": event_input(venue["id"], **WHEN)}
    refused = await upgraded.mutate("CreateEvent", show, organizer)
    assert [e["code"] for e in refused["errors"]] == ["DUPLICATE_EVENT"]
    assert (await upgraded.ok("CreateEvent", show, other_organizer))["event"]["id"]

    # Every later start reads the markers and no event (indexes aside).
    counter = CommandCounter()
    await make_api(db_listeners=(counter,))
    assert [t for t in counter.targets if t.split()[0] != "listIndexes"] == ["find migrations"], counter.targets
    assert {str(d["_id"]): d["dedupeKey"] async for d in upgraded.db.events.find({"_id": {"$in": [
        ObjectId(mine["id"]), ObjectId(other["id"])]}})} == keys


async def test_a_start_cut_short_finishes_the_rest_and_a_twin_keeps_its_old_key(make_api, organizer):
    """A migration interrupted half-way runs again over what is left; an old-form event whose
    show was published again under the new key (an earlier process beside a new one) keeps its
    old key, and the start does not fail on it."""
    first = await make_api()
    venue = await create_venue(first, organizer)
    done = await create_event(first, organizer, venue["id"], title="Done Already")
    left = await create_event(first, organizer, venue["id"], title="Left Over")
    old = await _as_the_earlier_version_left_it(first)
    await first.db.events.update_one({"_id": ObjectId(done["id"])}, {"$set": {"dedupeKey": f"org-1:{old[done['id']]}"}})
    twin_doc = await first.db.events.find_one({"_id": ObjectId(left["id"])})
    twin_doc |= {"_id": ObjectId(), "dedupeKey": f"org-1:{old[left['id']]}"}
    await first.db.events.insert_one(twin_doc)

    upgraded = await make_api()
    keys = {str(d["_id"]): d["dedupeKey"] async for d in upgraded.db.events.find({})}
    assert keys[done["id"]] == f"org-1:{old[done['id']]}"
    assert keys[left["id"]] == old[left["id"]]
    assert keys[str(twin_doc["_id"])] == f"org-1:{old[left['id']]}"
    assert await upgraded.db.migrations.count_documents({"_id": MIGRATION}) == 1
