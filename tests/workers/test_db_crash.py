"""Issue 10, finding 8, for real: the database server itself (SecantusDB, journaled) is SIGKILLed in
the middle of a purchase storm and started again on its files; the product comes back (a new API
process), the repair runs, and then every invariant holds and no buyer whose purchase COMPLETED
still holds a slot (an ADMITTED entry with the session that bought).

Where the kill lands is chance: the deterministic proof of the orphan repair is
tests/sale/test_repair_orphans.py; this one proves the whole product recovers from the crash.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from app.embedded import free_port, start_mongo
from app.flows.repair import repair
from app.pubsub import InProcessBroker
from app.queue import service as queue
from app.runtime import Runtime
from tests.workers.support import RemoteApi, invariant_violations, make_settings, start_api, stop_all, wait_ready
from tests.workers.test_crash import BUYERS, CHECKOUT_LIMIT, storm_on_a_new_event

pytestmark = pytest.mark.slow  # a database server killed and restarted under a purchase storm


async def paid_buyers_holding_slots(db, event_id: str) -> list[str]:
    """Buyers whose entry is ADMITTED with a session that holds a COMPLETED order."""
    held = []
    async for entry in db.eventQueue.find({"eventId": ObjectId(event_id), "status": "ADMITTED"}):
        if entry.get("sessionId") and await db.orders.find_one(
            {"userId": entry["userId"], "sessionId": entry["sessionId"], "state": "COMPLETED"}
        ):
            held.append(entry["userId"])
    return held


async def storm_and_kill_the_database(tmp_path, name: str, settings: dict, database, organizer: str) -> str:
    """An API process, a storm on a new event, and the database SIGKILLed once 5 orders completed;
    the event's id. The API process is stopped after."""
    api_process = start_api(tmp_path, name, **settings)
    watcher = AsyncMongoClient(settings["mongodb_uri"], serverSelectionTimeoutMS=2000)
    try:
        wait_ready(api_process)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            eid, storm = await storm_on_a_new_event(RemoteApi(http, api_process.port), organizer)
            stop = asyncio.Event()
            buyers = [asyncio.create_task(storm.buyer(n, stop)) for n in range(BUYERS)]
            try:
                deadline = asyncio.get_running_loop().time() + 60
                completed = {"eventId": ObjectId(eid), "state": "COMPLETED"}
                while await watcher.get_default_database().orders.count_documents(completed) < 5:
                    assert asyncio.get_running_loop().time() < deadline, "no purchases completed within 60 s"
                    await asyncio.sleep(0.005)
                database.kill()  # SIGKILL, mid-sale: purchases are being written as it dies
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*buyers), 120)
        assert any(o != "order" for o in storm.outcomes.values()), "the kill cut no buyer off"
        return eid
    finally:
        await watcher.close()
        stop_all([api_process])


async def test_sigkill_of_the_database_mid_sale_then_repair_leaves_no_paid_buyer_holding_a_slot(
    redis_url, tmp_path, organizer,
):
    storage, port = tmp_path / "secantus", free_port()
    database = start_mongo(storage, port=port, durable=True)
    uri = database.uri("crash")
    settings = {"mongodb_uri": uri, "redis_url": redis_url, "checkout_limit": CHECKOUT_LIMIT,
                "checkout_expiry_seconds": 600, "queue_expiry_seconds": 3600}
    mongo = AsyncMongoClient(uri)
    db = mongo.get_default_database()
    procs = []
    try:
        events = []
        for attempt in range(3):  # the kill lands by chance: until one cuts an ending off after its orders
            events.append(await storm_and_kill_the_database(tmp_path, f"api-{attempt}", settings, database, organizer))
            database = start_mongo(storage, port=port, durable=True)  # on its files, as an operator would
            orphans = await paid_buyers_holding_slots(db, events[-1])
            print(f"\nkill {attempt}: {len(orphans)} paid buyers hold slots after the restart")
            if orphans:
                break
        # The product comes back: a new API process beside the repair.
        api_process = start_api(tmp_path, "api-after", **settings)
        procs.append(api_process)
        wait_ready(api_process)
        rt = Runtime(db=db, settings=make_settings(uri, checkout_limit=CHECKOUT_LIMIT), broker=InProcessBroker())
        report = await repair(rt, grace_ms=0, settle_seconds=0.2)
        await queue.take_up_stranded_turns(rt)
        for eid in events:
            assert await paid_buyers_holding_slots(db, eid) == [], report
            problems = await invariant_violations(db, eid, CHECKOUT_LIMIT)
            assert problems == [], f"after the repair ({report}): {problems}"
        again = await repair(rt, grace_ms=0, settle_seconds=0.2)
        assert (again.orders_finished, again.orders_undone, again.checkouts_ended, again.corrections) == (
            0, 0, 0, []), again
    finally:
        await mongo.close()
        stop_all(procs)
        database.kill()
