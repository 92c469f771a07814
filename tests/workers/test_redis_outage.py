"""Redis stopped and started again (same port) in the middle of a sale.

Two API processes' worth of apps (each its own RedisBroker and ArqScheduler) share one database and a
redis-server of this test's own. While Redis is down: queries and mutations (joinQueue, checkout,
purchases) keep working, /readyz says Redis is unreachable (503), a subscriber on the process that made
a change keeps receiving, and one on the other process misses it. Once Redis is back: /readyz is ok, the
brokers reconnect and tell their subscribers to re-read (resync), so the one that missed the change sees
the true state; fan-out between processes works again; and nothing written meanwhile is lost.
"""

from __future__ import annotations

import asyncio

from bson import ObjectId

from app.embedded import start_redis
from tests.conftest import make_token
from tests.factories import on_sale_event, ticket_type_input
from tests.sale.test_subscriptions import connector_of, subscribe
from tests.workers.support import (
    buy,
    checkout,
    event_doc,
    eventually,
    invariant_violations,
    join,
    statuses,
)

DOWN_WITHIN = 10  # seconds for /readyz to notice Redis is gone
BACK_WITHIN = 15  # seconds to reconnect (the broker backs off up to 5 s between tries)
# No worker runs in these tests: the API reports it, and stays ready (its own sweep stands in).
READY_WITHOUT_WORKERS = (200, {"status": "ready", "checks": {"database": "ok", "redis": "ok", "worker": "silent"}})


async def readiness(api) -> tuple[int, dict]:
    response = await api.http.get("/readyz")
    return response.status, await response.json()


async def test_the_sale_goes_on_while_redis_is_down_and_subscribers_catch_up(make_api, tmp_path, organizer):
    storage = tmp_path / "redis"
    server = start_redis(storage, persist=False)
    try:
        overrides = {"redis_url": server.url(), "checkout_limit": 1, "checkout_expiry_seconds": 600}
        one, two = await make_api(**overrides), await make_api(**overrides)
        assert await readiness(one) == READY_WITHOUT_WORKERS

        event, (general,) = await on_sale_event(one, organizer, ticket_type_input(quantityTotal=10))
        eid = event["id"]
        a, b, c = make_token("buyer-a"), make_token("buyer-b"), make_token("buyer-c")
        await checkout(two, a, eid)  # buyer-a holds the only slot, through process two
        waiting = await join(one, b, eid, "WAITING")

        async with (
            subscribe(connector_of(one), "QueueUpdates", {"eventId": eid}, b) as b_on_one,
            subscribe(connector_of(two), "QueueUpdates", {"eventId": eid}, b) as b_on_two,
        ):
            for sub in (b_on_one, b_on_two):
                _, now = await sub.next_value("queueUpdates")
                assert (now["status"], now["position"]) == ("WAITING", 1)

            # --- Redis goes away -------------------------------------------------------------
            server.kill()
            assert server.proc.returncode is not None

            async def unready() -> tuple | None:
                status, body = await readiness(one)
                return (status, body) if body["checks"].get("redis") == "unreachable" else None

            status, body = await eventually(unready, DOWN_WITHIN, "/readyz to report Redis unreachable", 0.2)
            assert status == 503 and body == {"status": "unavailable", "checks": {"database": "ok", "redis": "unreachable"}}

            # Queries and mutations still work, on both processes.
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert (await one.data("Event", {"id": eid}))["event"]["status"] == "ON_SALE"
            assert (await one.data("QueuePosition", {"eventId": eid}, b))["queuePosition"]["position"] == 1
            late = await join(one, c, eid, "WAITING")
            order = await buy(two, a, eid, [(general["id"], 2)], "a-1")  # frees the slot: buyer-b is admitted
            assert len(order["tickets"]) == 2
            assert loop.time() - started < 15, "requests crawled while Redis was down"
            assert await statuses(one.db, eid) == {"buyer-a": "COMPLETED", "buyer-b": "ADMITTED", "buyer-c": "WAITING"}

            # The subscriber on the process that admitted buyer-b heard it at once.
            seen = await b_on_two.until("queueUpdates", lambda e: e["status"] == "ADMITTED", timeout=3)
            assert seen[-1][1]["seq"] == waiting["seq"]
            status, _ = await readiness(two)
            assert status == 503

            # ... and the one on the other process did not (the message went nowhere).
            await asyncio.sleep(0.5)
            assert [v["data"]["queueUpdates"]["status"] for _, v in b_on_one.received] == ["WAITING"]

            # --- Redis comes back on the same port -------------------------------------------------
            server = start_redis(storage, port=server.port, persist=False)

            async def ready() -> bool:
                return [(await readiness(api))[0] for api in (one, two)] == [200, 200]

            await eventually(ready, BACK_WITHIN, "/readyz to be ok again", 0.2)
            assert await readiness(one) == READY_WITHOUT_WORKERS

            # The subscriber on the other process missed the message; after the reconnect it re-reads.
            seen = await b_on_one.until("queueUpdates", lambda e: e["status"] == "ADMITTED", timeout=BACK_WITHIN)
            assert seen[-1][1]["seq"] == waiting["seq"] and seen[-1][1]["position"] is None

            # Fan-out between the processes works again: buyer-b leaves through process two,
            # and the subscriber on process one is told.
            await two.ok("LeaveQueue", {"eventId": eid}, b)
            await b_on_one.until("queueUpdates", lambda e: e["status"] == "LEFT", timeout=3)

        # Nothing written during the outage was lost.
        stored = await one.db.orders.find_one({"_id": ObjectId(order["id"])})
        assert stored["state"] == "COMPLETED"
        mine = (await one.data("MyTickets", {"eventId": eid}, a))["myTickets"]
        assert sorted(t["id"] for t in mine) == sorted(t["id"] for t in order["tickets"])
        assert (await one.db.eventQueue.find_one({"eventId": ObjectId(eid), "userId": "buyer-c"}))["seq"] == late["seq"]
        assert await statuses(one.db, eid) == {"buyer-a": "COMPLETED", "buyer-b": "LEFT", "buyer-c": "ADMITTED"}
        assert (await event_doc(one.db, eid))["activeCheckouts"] == 1
        assert await invariant_violations(one.db, eid, 1) == []
    finally:
        server.kill()


async def test_an_inventory_dashboard_on_another_process_catches_up_after_redis_returns(make_api, tmp_path, organizer):
    """eventInventory is a subscription like queueUpdates: a purchase made on another process while Redis
    was down must reach the dashboard once Redis is back (the broker's resync), not only at the next sale."""
    storage = tmp_path / "redis"
    server = start_redis(storage, persist=False)
    try:
        overrides = {"redis_url": server.url(), "checkout_limit": 5, "checkout_expiry_seconds": 600}
        one, two = await make_api(**overrides), await make_api(**overrides)
        event, (general,) = await on_sale_event(one, organizer, ticket_type_input(quantityTotal=10))
        eid = event["id"]
        a = make_token("buyer-a")
        await checkout(two, a, eid)

        async with subscribe(connector_of(one), "EventInventory", {"eventId": eid}) as dashboard:
            _, now = await dashboard.next_value("eventInventory")
            assert (now["ticketTypes"][0]["quantitySold"], now["activeCheckouts"]) == (0, 1)

            server.kill()
            await buy(two, a, eid, [(general["id"], 3)], "a-1")  # while Redis is down, on the other process
            await asyncio.sleep(0.5)
            server = start_redis(storage, port=server.port, persist=False)

            async def ready() -> bool:
                return (await readiness(one))[0] == 200

            await eventually(ready, BACK_WITHIN, "/readyz to be ok again", 0.2)
            seen = await dashboard.until(
                "eventInventory", lambda s: s["ticketTypes"][0]["quantitySold"] == 3, timeout=BACK_WITHIN
            )
            assert seen[-1][1]["activeCheckouts"] == 0 and seen[-1][1]["ticketsRemaining"] == 7
    finally:
        server.kill()
