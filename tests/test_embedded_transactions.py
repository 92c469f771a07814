"""The embedded SecantusDB, in the mode `make run` and the tests start it, still isolates transactions.

createTickets relies on a multi-document transaction (all of an event's new
ticket types, or none). These tests race real transactions against the real
server: a read-modify-write inside a transaction must never lose an update,
and nothing uncommitted or aborted may be seen.
"""

from __future__ import annotations

import asyncio

from pymongo import AsyncMongoClient

RACERS = 20


async def test_the_embedded_server_runs_standalone(mongo_uri: str):
    """The mode whose transactions the tests below prove: no replica set is advertised."""
    client = AsyncMongoClient(mongo_uri)
    try:
        hello = await client.admin.command("hello")
        assert "setName" not in hello and hello["isWritablePrimary"] is True
    finally:
        await client.close()


async def test_racing_read_modify_write_transactions_lose_no_update(mongo_uri: str):
    client = AsyncMongoClient(mongo_uri)
    db = client.get_default_database()
    await db.counters.insert_one({"_id": "c", "n": 0})

    async def bump(i: int) -> None:
        async with client.start_session() as session:

            async def body(s) -> None:
                # Read, then write what was read plus one: without isolation, racers overwrite each other.
                seen = (await db.counters.find_one({"_id": "c"}, session=s))["n"]
                await db.bumps.insert_one({"racer": i, "saw": seen}, session=s)
                await db.counters.update_one({"_id": "c"}, {"$set": {"n": seen + 1}}, session=s)

            await session.with_transaction(body)

    try:
        await asyncio.gather(*(bump(i) for i in range(RACERS)))
        assert (await db.counters.find_one({"_id": "c"}))["n"] == RACERS
        seen = sorted([d["saw"] async for d in db.bumps.find()])
        assert seen == list(range(RACERS)), "each committed racer saw the one before it"
    finally:
        await client.close()


async def test_uncommitted_writes_are_invisible_and_aborted_ones_vanish(mongo_uri: str):
    client = AsyncMongoClient(mongo_uri)
    db = client.get_default_database()
    await db.things.insert_one({"_id": 1, "n": 0})
    try:
        async with client.start_session() as session:
            await session.start_transaction()
            await db.things.update_one({"_id": 1}, {"$set": {"n": 99}}, session=session)
            await db.things.insert_one({"_id": 2}, session=session)
            assert (await db.things.find_one({"_id": 1}))["n"] == 0, "another reader saw an uncommitted write"
            assert await db.things.count_documents({"_id": 2}) == 0
            await session.abort_transaction()
        assert (await db.things.find_one({"_id": 1}))["n"] == 0
        assert await db.things.count_documents({}) == 1
    finally:
        await client.close()
