"""A dead worker delays nobody: its heartbeat lapses, /readyz says so, and the API sweeps in its place.

Both are real OS processes, configured as in production (`python -m app serve`
and `python -m app worker` with REDIS_URL): no test switch turns the sweep on.
"""

from __future__ import annotations

import json
import signal

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from app.timeutil import now_ms
from tests.conftest import make_token
from tests.factories import on_sale_event
from tests.workers.support import (
    RemoteApi,
    entry_doc,
    eventually,
    join,
    spawn,
    start_api,
    stop_all,
    wait_ready,
    wait_worker_ready,
)
from workers.heartbeat import SILENT_AFTER_MS

pytestmark = pytest.mark.slow  # an API and a worker OS process, one killed: `make test-fast` leaves it out

# From a slot freeing to the next buyer's admission, with the worker dead (issue 8).
ADMITTED_WITHIN_MS = 2000


async def worker_check(api: RemoteApi) -> str:
    status, text = await api.get("/readyz")
    assert status == 200, text  # a silent worker never makes the API unready
    return json.loads(text)["checks"]["worker"]


async def test_a_killed_worker_is_reported_and_the_next_buyer_is_admitted_on_time(
    mongo_uri, redis_url, tmp_path, organizer
):
    settings = {"mongodb_uri": mongo_uri, "redis_url": redis_url, "checkout_limit": 1, "checkout_expiry_seconds": 1}
    procs = [start_api(tmp_path, "api", **settings), spawn(tmp_path, "worker", "worker", **settings)]
    api_proc, worker = procs
    mongo = AsyncMongoClient(mongo_uri)
    try:
        wait_ready(api_proc)
        wait_worker_ready(worker)
        db = mongo.get_default_database()
        async with aiohttp.ClientSession() as http:
            api = RemoteApi(http, api_proc.port)
            assert await worker_check(api) == "ok"
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(10)
            killed_at = now_ms()

            async def reported_silent() -> bool:
                return await worker_check(api) == "silent"

            await eventually(reported_silent, SILENT_AFTER_MS / 1000 + 1, "/readyz to report the silent worker")
            assert now_ms() - killed_at <= SILENT_AFTER_MS + 1000

            # One slot: A takes it and goes idle; B waits. Nobody calls the API again:
            # the API's own sweep must expire A and hand B the slot, on time.
            event, _ = await on_sale_event(api, organizer)
            eid = event["id"]
            await join(api, make_token("buyer-a"), eid, "ADMITTED")
            await join(api, make_token("buyer-b"), eid, "WAITING")
            a = await entry_doc(db, eid, "buyer-a")

            async def b_admitted() -> dict | None:
                b = await entry_doc(db, eid, "buyer-b")
                return b if b["status"] == "ADMITTED" else None

            b = await eventually(b_admitted, 5, "buyer-b's admission after buyer-a's expiry", interval=0.02)
            assert (await entry_doc(db, eid, "buyer-a"))["status"] == "EXPIRED"
            late = b["admittedAtUtc"] - a["expiresAtUtc"]
            assert 0 <= late <= ADMITTED_WITHIN_MS, f"buyer-b admitted {late} ms after the slot freed"
    finally:
        stop_all(procs)
        await mongo.close()
