"""A crowd joining at the same second: a free slot with nobody ahead is ADMITTED in the answer itself.

Real API processes (`python -m app serve`), real HTTP, 200 buyers at once
(DESIGN section 3, issue 8). The place and the slot come from one guarded
write on the event, so no lock decides who may admit.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from app.catalog.turns import Turns
from tests.conftest import make_token
from tests.factories import on_sale_event, ticket_type_input
from tests.workers.support import RemoteApi, start_api, stop_all, wait_ready

pytestmark = pytest.mark.slow  # two API processes and 200 buyers: `make test-fast` leaves it out

CROWD = 200


async def crowd_joins(apis: list[RemoteApi], event_id: str) -> list[dict]:
    """Every buyer joins at once, buyer i through API process i % len(apis); their entries, in buyer order."""
    go = asyncio.Event()

    async def one(i: int) -> dict:
        await go.wait()
        payload = await apis[i % len(apis)].mutate("JoinQueue", {"eventId": event_id}, make_token(f"rush-{i:03d}"))
        assert payload["errors"] == [], payload
        return payload["entry"]

    tasks = [asyncio.create_task(one(i)) for i in range(CROWD)]
    await asyncio.sleep(0.1)
    go.set()
    return await asyncio.gather(*tasks)


@pytest.mark.parametrize(("processes", "limit"), [(2, CROWD), (1, 5)])
async def test_a_crowd_joining_at_once_is_admitted_in_the_answer_while_slots_last(
    mongo_uri, tmp_path, processes, limit
):
    settings = {"mongodb_uri": mongo_uri, "checkout_limit": limit}
    procs = [start_api(tmp_path, f"api-{n}", **settings) for n in range(processes)]
    mongo = AsyncMongoClient(mongo_uri)
    try:
        for proc in procs:
            wait_ready(proc)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            apis = [RemoteApi(http, proc.port) for proc in procs]
            organizer = make_token("org-rush", "organizer")
            event, _ = await on_sale_event(apis[0], organizer, ticket_type_input(quantityTotal=1000, maxPerPurchase=4))
            entries = await crowd_joins(apis, event["id"])

        assert sorted(e["seq"] for e in entries) == list(range(1, CROWD + 1))
        admitted = sorted(e["seq"] for e in entries if e["status"] == "ADMITTED")
        # Exactly the first `limit` places found a free slot with nobody ahead, and were told so at once.
        assert admitted == list(range(1, min(limit, CROWD) + 1)), admitted
        waiting = sorted((e["seq"], e["position"]) for e in entries if e["status"] == "WAITING")
        assert all(position is not None and position >= 1 for _, position in waiting)
        stored = await mongo.get_default_database().events.find_one({"_id": ObjectId(event["id"])})
        assert stored["activeCheckouts"] == len(admitted)
        assert Turns.of(stored).waiting == CROWD - len(admitted)
        # Positions follow seq order, counting only the buyers waiting ahead.
        assert [position for _, position in waiting] == list(range(1, len(waiting) + 1))
    finally:
        stop_all(procs)
        await mongo.close()
