"""An API process killed mid-admission delays nobody (issue 8): it gave the next buyer the
turn and died before admitting them; another API process takes the turn up.

Real OS processes, configured as in production. The one that dies is made to
SIGKILL itself at the exact step (app/failpoints.py), between the write that
gives the turn and the write that admits its buyer.
"""

from __future__ import annotations

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from app.catalog import turns
from app.failpoints import ENV
from app.timeutil import now_ms
from tests.conftest import make_token
from tests.factories import on_sale_event
from tests.workers.support import RemoteApi, entry_doc, eventually, join, start_api, stop_all, wait_ready

pytestmark = pytest.mark.slow  # two API OS processes, one killed: `make test-fast` leaves it out

ADMITTED_WITHIN_MS = 2000


async def test_an_api_killed_between_giving_a_turn_and_admitting_its_buyer_strands_nobody(
    mongo_uri, redis_url, tmp_path, organizer
):
    settings = {"mongodb_uri": mongo_uri, "redis_url": redis_url, "checkout_limit": 1}
    doomed = start_api(tmp_path, "doomed", **settings, **{ENV: "queue.turn_given"})
    survivor = start_api(tmp_path, "survivor", **settings)
    mongo = AsyncMongoClient(mongo_uri)
    try:
        wait_ready(doomed)
        wait_ready(survivor)
        db = mongo.get_default_database()
        async with aiohttp.ClientSession() as http:
            first, second = RemoteApi(http, doomed.port), RemoteApi(http, survivor.port)
            event, _ = await on_sale_event(second, organizer)
            eid = event["id"]
            await join(first, make_token("buyer-a"), eid, "ADMITTED")
            b = await join(second, make_token("buyer-b"), eid, "WAITING")

            # A leaves through the doomed process: it frees A's slot, gives B the turn, and dies.
            with pytest.raises(aiohttp.ClientError):
                await first.mutate("LeaveQueue", {"eventId": eid}, make_token("buyer-a"))
            doomed.proc.wait(10)
            died_at = now_ms()
            assert doomed.proc.returncode == -9, doomed.tail()
            counted = await turns.read(db, eid)
            assert counted.has_turn(b["seq"]), "the doomed process died before giving the turn"

            async def b_admitted() -> dict | None:
                entry = await entry_doc(db, eid, "buyer-b")
                return entry if entry["status"] == "ADMITTED" else None

            admitted = await eventually(b_admitted, 5, "buyer-b's admission by the surviving process", interval=0.02)
            assert admitted["admittedAtUtc"] - died_at <= ADMITTED_WITHIN_MS
            assert (await entry_doc(db, eid, "buyer-a"))["status"] == "LEFT"
            assert (await turns.read(db, eid)).active == 1
    finally:
        stop_all([doomed, survivor])
        await mongo.close()
