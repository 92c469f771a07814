"""Production shape: two API processes (`python -m app serve`) and one worker (`python -m app worker`) as
separate OS processes, configured only by the environment, on the test session's SecantusDB server and
redis-server. A change made by one process (or the worker) reaches the subscribers of the other.
"""

from __future__ import annotations

import re

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from app.embedded import free_port
from tests.conftest import make_token
from tests.factories import on_sale_event, ticket_type_input
from tests.sale.test_subscriptions import subscribe
from tests.workers.support import (
    RemoteApi,
    buy,
    invariant_violations,
    join,
    readyz,
    spawn,
    start_api,
    stop_all,
    wait_ready,
    wait_worker_ready,
)

pytestmark = pytest.mark.slow  # two API processes and a worker: `make test-fast` leaves it out

CHECKOUT_EXPIRY = 3


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None if absent."""
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "") + r" ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


METRICS_TOKEN = "metrics-token-of-the-test"


async def test_two_api_processes_and_a_worker_share_one_sale(mongo_uri, redis_url, tmp_path, organizer):
    common = {
        "mongodb_uri": mongo_uri, "redis_url": redis_url, "checkout_limit": 1,
        "checkout_expiry_seconds": CHECKOUT_EXPIRY, "queue_expiry_seconds": 3600, "queue_cooldown_seconds": 3600,
        "metrics_token": METRICS_TOKEN,  # `serve` serves /metrics only behind one
    }
    worker_metrics_port = free_port()
    procs = []
    mongo = AsyncMongoClient(mongo_uri)
    try:
        procs.append(api_a := start_api(tmp_path, "api-a", **common))
        procs.append(api_b := start_api(tmp_path, "api-b", **common))
        procs.append(worker := spawn(tmp_path, "worker", "worker", metrics_port=worker_metrics_port, **common))
        wait_ready(api_a)
        wait_ready(api_b)
        wait_worker_ready(worker)
        db = mongo.get_default_database()

        for proc in (api_a, api_b):
            checks = {"database": "ok", "redis": "ok", "worker": "ok"}
            assert readyz(proc.port) == (200, {"status": "ready", "checks": checks})

        async with aiohttp.ClientSession() as http:
            a_api, b_api = RemoteApi(http, api_a.port), RemoteApi(http, api_b.port)
            event, (general,) = await on_sale_event(b_api, organizer, ticket_type_input(quantityTotal=10))
            eid = event["id"]
            first, second = make_token("buyer-1"), make_token("buyer-2")
            # buyer-1 holds the only slot through process B, then goes idle in checkout.
            await join(b_api, first, eid, "ADMITTED")
            await b_api.ok("StartCheckout", {"eventId": eid}, first)
            waiting = await join(a_api, second, eid, "WAITING")

            async with (
                subscribe(a_api.ws_connect, "QueueUpdates", {"eventId": eid}, second) as queue_on_a,
                subscribe(a_api.ws_connect, "EventInventory", {"eventId": eid}) as inventory_on_a,
            ):
                _, now = await queue_on_a.next_value("queueUpdates")
                assert (now["status"], now["position"]) == ("WAITING", 1)
                _, stock = await inventory_on_a.next_value("eventInventory")
                assert (stock["ticketTypes"][0]["quantitySold"], stock["activeCheckouts"]) == (0, 1)

                # Nobody calls either API: the worker expires buyer-1's session held through B,
                # and the subscriber on A hears that buyer-2 is admitted.
                seen = await queue_on_a.until(
                    "queueUpdates", lambda e: e["status"] == "ADMITTED", timeout=CHECKOUT_EXPIRY + 4
                )
                assert seen[-1][1]["seq"] == waiting["seq"]
                one = await db.eventQueue.find_one({"userId": "buyer-1"})
                assert one["status"] == "EXPIRED"
                assert 0 <= one["endedAtUtc"] - one["expiresAtUtc"] <= 2000, one

                # buyer-2 buys through B; the dashboard on A sees the stock change.
                await b_api.ok("StartCheckout", {"eventId": eid}, second)
                order = await buy(b_api, second, eid, [(general["id"], 2)], "k1")
                assert len(order["tickets"]) == 2
                # The stock moves before the slot is given back (two writes, each announced):
                # the dashboard may show them one at a time, but must end on both.
                seen = await inventory_on_a.until(
                    "eventInventory",
                    lambda s: s["ticketTypes"][0]["quantitySold"] == 2 and s["activeCheckouts"] == 0, timeout=3,
                )
                assert seen[-1][1]["ticketTypes"][0]["quantityRemaining"] == 8

            # Metrics: each process exposes its own ticketing_* counters.
            status, text_b = await b_api.get("/metrics", token=METRICS_TOKEN)
            assert status == 200
            assert metric(text_b, "ticketing_purchases_total", outcome="completed") == 1
            assert metric(text_b, "ticketing_tickets_issued_total") == 2
            assert metric(text_b, "ticketing_admissions_total") == 1  # buyer-1, through B
            assert metric(text_b, "ticketing_http_request_seconds_count", method="POST", path="/graphql", status="200") >= 5
            assert re.search(r'^ticketing_http_request_seconds_bucket\{le="0\.005",.*path="/graphql".*\} ', text_b, re.MULTILINE)
            _, text_a = await a_api.get("/metrics", token=METRICS_TOKEN)
            assert metric(text_a, "ticketing_purchases_total", outcome="completed") is None  # none bought through A
            async with http.get(f"http://127.0.0.1:{worker_metrics_port}/metrics") as response:
                text_w = await response.text()
            # The expiry was the worker's deferred job. (How many of its runs *say* they expired the entry
            # is the subject of test_jobs.py: two due at once can both claim it.)
            assert metric(text_w, "ticketing_job_runs_total", job="expire_due_entries", outcome="expired") >= 1
            assert metric(text_w, "ticketing_queue_expiries_total") == 1
            assert metric(text_w, "ticketing_admissions_total") == 1  # buyer-2, by the worker

        assert await invariant_violations(db, eid, 1) == []
        for proc in procs:
            assert proc.proc.poll() is None, f"{proc.name} exited:\n{proc.tail()}"
            assert proc.problems() == [], f"{proc.name} logged faults:\n{proc.tail()}"
    finally:
        stop_all(procs)
        await mongo.close()
    for proc in procs:
        assert proc.proc.returncode is not None
