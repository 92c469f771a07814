"""The repair's reads of in-flight orders (issue 10, "indexed in-flight order queries") examine the
orders in flight, not every order ever written: the server's own explain counts say so."""

from __future__ import annotations

from bson import ObjectId
from pymongo import monitoring

from app.db import INDEXES, ORDERS_IN_FLIGHT
from app.orders import service as orders
from app.orders.models import IN_FLIGHT, OrderState
from app.timeutil import now_ms
from tests.conftest import make_token
from tests.factories import checkout, on_sale_event, stuck_order

PAST_ORDERS = 2_000


class OrderFinds(monitoring.CommandListener):
    """The `find` commands sent to the orders collection, to explain them afterwards."""

    def __init__(self) -> None:
        self.finds: list[dict] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "orders":
            self.finds.append({k: event.command[k] for k in ("filter", "hint") if k in event.command})

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


async def examined(db, finds: list[dict]) -> tuple[int, int, set[str]]:
    """Keys and documents the finds examined, by the server's own explain, and the plans' stages."""
    keys = docs = 0
    stages: set[str] = set()
    for find in finds:
        explain = await db.command({"explain": {"find": "orders", **find}, "verbosity": "executionStats"})
        keys += explain["executionStats"]["totalKeysExamined"]
        docs += explain["executionStats"]["totalDocsExamined"]
        stages |= set(_stages(explain["queryPlanner"]["winningPlan"]))
    return keys, docs, stages


def _stages(plan) -> list[str]:
    if isinstance(plan, dict):
        return ([plan["stage"]] if "stage" in plan else []) + [s for v in plan.values() for s in _stages(v)]
    if isinstance(plan, list):
        return [s for v in plan for s in _stages(v)]
    return []


def test_the_partial_index_holds_exactly_the_in_flight_states():
    """The index's filter is a range over the state names: a new state must not fall outside it
    while in flight, nor inside it once done (the index would grow with history again)."""
    (index,) = [m.document for m in INDEXES["orders"] if m.document["name"] == ORDERS_IN_FLIGHT]
    floor = index["partialFilterExpression"]["state"]["$gte"]
    assert {s for s in OrderState if s.value >= floor} == set(IN_FLIGHT)


async def test_in_flight_reads_examine_the_orders_in_flight_not_the_history(make_api, organizer):
    recorder = OrderFinds()
    api = await make_api(db_listeners=[recorder])
    rt = api.runtime
    event, (general,) = await on_sale_event(api, organizer)
    other, (other_general,) = await on_sale_event(api, organizer)
    session = await checkout(api, make_token("buyer-1"), event["id"])
    template = await stuck_order(api.db, event_id=event["id"], user="past", session_id=session["id"],
                                 items=[(general, 1)], state=OrderState.COMPLETED, key="past", take_stock=False)
    doc = await api.db.orders.find_one({"_id": ObjectId(template.id)})
    await api.db.orders.insert_many([
        doc | {"_id": ObjectId(), "userId": f"past-{i}", "eventId": ObjectId((event, other)[i % 2]["id"])}
        for i in range(PAST_ORDERS)
    ])
    stuck = [
        await stuck_order(api.db, event_id=event["id"], user="buyer-1", session_id=session["id"],
                          items=[(general, 1)], state=OrderState.PENDING, key="a", take_stock=False),
        await stuck_order(api.db, event_id=event["id"], user="buyer-2", session_id=session["id"],
                          items=[(general, 1)], state=OrderState.RESERVED, key="b", take_stock=False),
        await stuck_order(api.db, event_id=other["id"], user="buyer-3", session_id=session["id"],
                          items=[(other_general, 1)], state=OrderState.PENDING, key="c", take_stock=False, age_ms=0),
    ]
    assert await api.db.orders.count_documents({}) == PAST_ORDERS + 4

    recorder.finds.clear()
    stale = await orders.stale_orders(rt, untouched_since_ms=now_ms() - 30_000)
    assert sorted(o.id for o in stale) == sorted(o.id for o in stuck[:2])  # the fresh one is left alone
    keys, docs, stages = await examined(api.db, recorder.finds)
    assert "COLLSCAN" not in stages and "IXSCAN" in stages, stages
    # Each state's read walks the index of the 3 in flight; nothing of the 2,001 done.
    assert keys <= 2 * len(stuck) and docs <= 2 * len(stuck), (keys, docs)

    recorder.finds.clear()
    in_flight = await orders.orders_in_flight(rt, event_id=event["id"])
    assert sorted(o.id for o in in_flight) == sorted(o.id for o in stuck[:2])
    keys, docs, stages = await examined(api.db, recorder.finds)
    assert "COLLSCAN" not in stages and "IXSCAN" in stages, stages
    assert keys <= 2 * 2 and docs <= 2 * 2, (keys, docs)

    # An order that completes leaves the index: the reads no longer see it.
    await api.db.orders.update_one({"_id": ObjectId(stuck[0].id)}, {"$set": {"state": "COMPLETED"}})
    assert [o.id for o in await orders.orders_in_flight(rt, event_id=event["id"])] == [stuck[1].id]
