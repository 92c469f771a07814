"""Every collection and index of DESIGN section 2 exists after start-up, and start-up is idempotent."""

from __future__ import annotations

from app import db as database
from app.db import POOL_SIZE, connect

EXPECTED = {
    "venues": [["city"], ["timezone"]],
    "events": [["status", "startAtUtc"], ["venue.city", "startAtUtc"], ["artistId", "startAtUtc"], ["dedupeKey"],
               ["searchRanks", "startAtUtc", "_id"], ["venue.city", "searchRanks", "startAtUtc"], ["queueActivityAtUtc"]],
    "eventTickets": [["eventId", "type"], ["eventId"]],
    "userTickets": [["ticketNumber"], ["confirmationCode"], ["userId", "purchasedAtUtc"], ["eventId", "userId"],
                    ["userId", "status"]],
    "eventQueue": [["eventId", "userId"], ["eventId", "status", "seq"], ["eventId", "expiresAtUtc"], ["expiresAtUtc"]],
    "checkoutSessions": [["eventId"], ["eventId", "userId"], ["expiresAtUtc"]],
    "orders": [["userId", "idempotencyKey"]],
}
UNIQUE = {("events", "dedupeKey"), ("eventTickets", "eventId,type"), ("userTickets", "ticketNumber"),
          ("userTickets", "confirmationCode"), ("eventQueue", "eventId,userId"), ("orders", "userId,idempotencyKey")}


async def test_start_up_creates_every_index_and_can_run_again(api):
    await database.ensure_indexes(api.db)  # a second start changes nothing and raises nothing
    for collection, wanted in EXPECTED.items():
        info = await api.db[collection].index_information()
        keys = {",".join(k for k, _ in spec["key"]): spec.get("unique", False) for spec in info.values()}
        for fields in wanted:
            name = ",".join(fields)
            assert name in keys, f"{collection} lacks an index on {name}"
            assert keys[name] == ((collection, name) in UNIQUE), f"{collection}.{name} uniqueness"

    names = {ix["name"] async for ix in await api.db.events.list_indexes()}
    assert "searchTokens_startAtUtc" not in names


async def test_start_up_drops_the_index_an_earlier_version_searched_with(api):
    """Each index costs every insert a write: the old search's token index goes at start-up."""
    await api.db.events.create_index([("searchTokens", 1), ("startAtUtc", 1)], name="searchTokens_startAtUtc")
    await database.ensure_indexes(api.db)
    names = {ix["name"] async for ix in await api.db.events.list_indexes()}
    assert "searchTokens_startAtUtc" not in names and "searchRanks_startAtUtc" in names


def test_the_database_is_named_by_the_uri():
    assert database.database_name("mongodb://127.0.0.1:1/shop?directConnection=true") == "shop"
    assert database.database_name("mongodb://127.0.0.1:1/") == "ticketing"


async def test_the_pool_is_small_unless_the_uri_says_otherwise():
    """Few connections keep the embedded server off contention (app.db.POOL_SIZE); a URI's own wins."""
    default = connect("mongodb://127.0.0.1:1/x")
    own = connect("mongodb://127.0.0.1:1/x?maxPoolSize=50")
    try:
        assert default.options.pool_options.max_pool_size == POOL_SIZE == 8
        assert own.options.pool_options.max_pool_size == 50
    finally:
        await default.close()
        await own.close()


async def test_the_apps_database_makes_each_collection_once(api):
    db = api.db
    assert isinstance(db, database.Database)
    assert db.events is db.events and db.eventTickets is db.eventTickets
    assert db.events.full_name == f"{db.name}.events" and db.events.database is db
    assert await db.events.count_documents({}) == await db["events"].count_documents({})
