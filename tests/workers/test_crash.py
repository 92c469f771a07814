"""Crash safety (DESIGN invariant 7) for real: an API process (`python -m app serve`) is SIGKILLed in the
middle of a purchase storm, with purchases in flight. Then app.flows.repair.repair (called directly, no
grace, a short settle time) must leave the documents consistent: DESIGN invariants 1 and 7 hold, no order
is left PENDING or RESERVED, every COMPLETED order has exactly its tickets, and the slot counter equals
the ADMITTED entries.
"""

from __future__ import annotations

import asyncio
import random
import signal

import aiohttp
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from app.auth import issue_token
from app.pubsub import InProcessBroker
from app.queue import service as queue
from app.runtime import Runtime
from app.flows.repair import repair
from tests.conftest import JWT_SECRET
from tests.factories import on_sale_event, ticket_type_input
from tests.workers.support import (
    RemoteApi,
    invariant_violations,
    make_settings,
    start_api,
    stop_all,
    wait_ready,
)

pytestmark = pytest.mark.slow  # API processes killed in a purchase storm: `make test-fast` leaves it out

BUYERS = 80
CHECKOUT_LIMIT = 25
STOCK = {"GENERAL": 60, "VIP": 20}


class Storm:
    """Buyers hammering one API process: join, wait for admission, checkout, buy; errors are expected
    once the process is gone, and end the buyer."""

    def __init__(self, api: RemoteApi, event_id: str, types: dict[str, str]) -> None:
        self.api, self.event_id, self.types = api, event_id, types
        self.outcomes: dict[str, str] = {}

    async def buyer(self, n: int, stop: asyncio.Event) -> None:
        user = f"storm-{n}"
        token = issue_token(JWT_SECRET, user, [], 3600)
        rng = random.Random(n)
        event = {"eventId": self.event_id}
        try:
            await asyncio.sleep(rng.uniform(0, 0.3))
            entry = (await self.api.mutate("JoinQueue", event, token))["entry"]
            while entry and entry["status"] == "WAITING" and not stop.is_set():
                await asyncio.sleep(rng.uniform(0.05, 0.15))
                entry = (await self.api.data("QueuePosition", event, token))["queuePosition"]
            if not entry or entry["status"] != "ADMITTED":
                self.outcomes[user] = f"not admitted: {entry and entry['status']}"
                return
            await self.api.mutate("StartCheckout", event, token)
            kind = rng.choice(["GENERAL", "GENERAL", "VIP", "BOTH"])
            items = (
                [{"ticketTypeId": self.types["GENERAL"], "quantity": 1}, {"ticketTypeId": self.types["VIP"], "quantity": 1}]
                if kind == "BOTH" else [{"ticketTypeId": self.types[kind], "quantity": rng.choice([1, 2])}]
            )
            bought = await self.api.mutate(
                # A key of this event's: a second attempt's buyers are the first's, and a key used for
                # another event is refused (its slot then stays held, and nobody behind is admitted).
                "PurchaseTickets", {"input": {**event, "idempotencyKey": f"{user}-{self.event_id}", "items": items}}, token
            )
            self.outcomes[user] = "order" if bought["order"] else f"refused: {bought['errors']}"
        except (TimeoutError, aiohttp.ClientError, AssertionError, OSError) as error:
            self.outcomes[user] = f"cut off: {type(error).__name__}"


async def storm_on_a_new_event(api: RemoteApi, organizer: str) -> tuple[str, Storm]:
    """A new event on sale with the STOCK, and a storm of buyers ready for it; the event id."""
    event, created = await on_sale_event(api, organizer, *(
        ticket_type_input(type=kind, quantityTotal=total, maxPerPurchase=2) for kind, total in STOCK.items()
    ))
    return event["id"], Storm(api, event["id"], {t["type"]: t["id"] for t in created})


async def storm_and_kill(tmp_path, name: str, settings: dict, db, organizer: str) -> tuple[str, int, Storm]:
    """Start an API process, let the storm loose on a new event, SIGKILL the process while purchases are
    in flight; the event id, how many orders the kill left PENDING/RESERVED, and the storm."""
    victim = start_api(tmp_path, name, **settings)
    try:
        wait_ready(victim)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            eid, storm = await storm_on_a_new_event(RemoteApi(http, victim.port), organizer)
            stop = asyncio.Event()
            buyers = [asyncio.create_task(storm.buyer(n, stop)) for n in range(BUYERS)]
            try:
                # Kill the process the moment purchases are in flight (written PENDING or RESERVED, not
                # finished), once a few have completed.
                in_flight_now = {"eventId": ObjectId(eid), "state": {"$in": ["PENDING", "RESERVED"]}}
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while True:
                    in_flight = await db.orders.count_documents(in_flight_now)
                    completed = await db.orders.count_documents({"eventId": ObjectId(eid), "state": "COMPLETED"})
                    if in_flight >= 2 and completed >= 5:
                        victim.proc.send_signal(signal.SIGKILL)
                        break
                    assert loop.time() < deadline, f"no purchases in flight within 60 s ({completed} completed)"
                    assert not all(b.done() for b in buyers), f"the storm ended before the kill: {storm.outcomes}"
                    await asyncio.sleep(0.005)
                victim.proc.wait(10)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*buyers), 60)
        return eid, await db.orders.count_documents(in_flight_now), storm
    finally:
        stop_all([victim])


async def test_sigkill_in_a_purchase_storm_then_repair_restores_the_invariants(mongo_uri, redis_url, tmp_path, organizer):
    settings = {"mongodb_uri": mongo_uri, "redis_url": redis_url, "checkout_limit": CHECKOUT_LIMIT,
                "checkout_expiry_seconds": 600, "queue_expiry_seconds": 3600}
    mongo = AsyncMongoClient(mongo_uri)
    db = mongo.get_default_database()
    try:
        events, left_in_flight = [], 0
        for attempt in range(3):  # a kill may land just after the purchases in flight finished: try again
            eid, in_flight, storm = await storm_and_kill(tmp_path, f"api-victim-{attempt}", settings, db, organizer)
            events.append(eid)
            left_in_flight += in_flight
            print(f"\nkill {attempt}: {in_flight} orders left in flight; buyers: {sorted(set(storm.outcomes.values()))}")
            assert any(o.startswith("cut off") for o in storm.outcomes.values()), "the kill cut no buyer off"
            if in_flight:
                break
        assert left_in_flight >= 1, "no kill left a purchase half-done: nothing for the repair to prove"
        completed_before = await db.orders.count_documents({"state": "COMPLETED"})

        rt = Runtime(db=db, settings=make_settings(mongo_uri, checkout_limit=CHECKOUT_LIMIT), broker=InProcessBroker())
        report = await repair(rt, grace_ms=0, settle_seconds=0.2)
        assert report.orders_finished + report.orders_undone == left_in_flight, report
        # A kill between giving a turn and admitting its buyer leaves a WAITING entry holding a slot;
        # every API process takes such turns up within a second. Here no API process is left.
        await queue.take_up_stranded_turns(rt)
        for eid in events:
            problems = await invariant_violations(db, eid, CHECKOUT_LIMIT)
            assert problems == [], f"after the repair ({report}): {problems}"
        assert await db.orders.count_documents({"state": "COMPLETED"}) == completed_before + report.orders_finished

        # A second repair finds nothing left to do.
        again = await repair(rt, grace_ms=0, settle_seconds=0.2)
        assert (again.orders_finished, again.orders_undone, again.corrections) == (0, 0, []), again
    finally:
        await mongo.close()
