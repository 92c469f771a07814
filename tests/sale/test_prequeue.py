"""The randomised pre-queue (issue 11 part 2): buyers who join in the minutes before the sale get no
place; at the opening their order is drawn at random, once, recorded for audit, and pushed; those
who join after the opening go behind them in arrival order.
"""

from __future__ import annotations

import asyncio
import statistics

from bson import ObjectId

from app.auth import Viewer
from app.catalog import service as catalog
from app.queue import prequeue
from app.queue import service as queue
from app.timeutil import now_ms
from tests.conftest import make_token
from tests.factories import codes, create_event, create_tickets, days_from_now, iso, ticket_type_input
from tests.sale.test_subscriptions import connector_of, subscribe

PRE_QUEUED, LATE, LIMIT, SEED = 500, 20, 10, 20261126


async def pre_queue_event(api, organizer, minutes: int = 1440) -> tuple[str, str]:
    """An event whose sale opens in a day, with a pre-queue of `minutes` (open now): its id and type id."""
    event = await create_event(api, organizer)
    (general,) = await create_tickets(api, organizer, event["id"], ticket_type_input(
        quantityTotal=1000, saleStartsAt=iso(days_from_now(1)), saleEndsAt=iso(days_from_now(20))))
    updated = await api.mutate("UpdateEvent", {"id": event["id"], "input": {"queueOpensMinutesBefore": minutes}}, organizer)
    assert codes(updated) == [] and updated["event"]["queueOpensMinutesBefore"] == minutes
    return event["id"], general["id"]


async def open_the_sale(api, event_id: str, type_id: str) -> None:
    """The sale's opening comes (its start, and the sale window's instant, moved to a moment ago, as the clock would)."""
    opened = now_ms() - 1
    await api.db.eventTickets.update_one({"_id": ObjectId(type_id)}, {"$set": {"saleStartsAtUtc": opened}})
    await api.db.saleWindows.insert_one({"eventId": ObjectId(event_id), "at": opened})
    catalog.forget_sale_view(event_id)


async def entries_by_user(api, event_id: str) -> dict[str, dict]:
    return {d["userId"]: d async for d in api.db.eventQueue.find({"eventId": ObjectId(event_id)})}


def spearman(xs: list[int], ys: list[int]) -> float:
    """Rank correlation of two sequences of distinct values."""
    def ranks(values: list[int]) -> list[int]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0] * len(values)
        for rank, i in enumerate(order):
            out[i] = rank
        return out
    return statistics.correlation(ranks(xs), ranks(ys))


async def test_the_pre_queue_is_drawn_at_random_once_recorded_and_late_joiners_go_behind(make_api, organizer):
    api = await make_api(checkout_limit=LIMIT)
    rt = api.runtime
    eid, tid = await pre_queue_event(api, organizer)
    buyers = [f"pq-{i:03d}" for i in range(PRE_QUEUED)]
    watched = [buyers[0], buyers[-1]]  # the first to arrive and the last second's
    async with subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, make_token(watched[0])) as first_sub, \
            subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, make_token(watched[1])) as last_sub:
        for user in buyers:  # in a known order
            joined = await queue.join_queue(rt, actor=Viewer(user_id=user), event_id=eid)
            assert (joined.entry.status.value, joined.entry.seq, joined.position) == ("PRE_QUEUE", 0, None)
        for sub in (first_sub, last_sub):
            await sub.until("queueUpdates", lambda e: e["status"] == "PRE_QUEUE")
        shown = (await api.data("QueuePosition", {"eventId": eid}, make_token(buyers[7])))["queuePosition"]
        assert (shown["status"], shown["seq"], shown["position"]) == ("PRE_QUEUE", 0, None)

        await open_the_sale(api, eid, tid)
        assert await queue.draw_pre_queue(rt, event_id=eid, seed=SEED)  # what the job at the opening does
        # Each subscriber is pushed its drawn place at the opening.
        for sub, user in ((first_sub, watched[0]), (last_sub, watched[1])):
            pushed = await sub.until("queueUpdates", lambda e: e["status"] in ("WAITING", "ADMITTED"))
            assert pushed[-1][1]["seq"] > 0

    late = [f"late-{i:02d}" for i in range(LATE)]
    for user in late:
        await queue.join_queue(rt, actor=Viewer(user_id=user), event_id=eid)
    entries = await entries_by_user(api, eid)
    seqs = [entries[u]["seq"] for u in buyers]
    # A permutation of the pre-queued, and not their arrival order.
    assert sorted(seqs) == list(range(1, PRE_QUEUED + 1))
    assert seqs != sorted(seqs)
    assert abs(spearman(list(range(PRE_QUEUED)), seqs)) < 0.15, spearman(list(range(PRE_QUEUED)), seqs)
    # Arriving in the last moments gave no advantage over arriving first.
    last_50, first_50 = statistics.mean(seqs[-50:]), statistics.mean(seqs[:50])
    assert 150 < last_50 < 350 and 150 < first_50 < 350, (first_50, last_50)
    # The first CHECKOUT_LIMIT drawn were admitted at once; the others wait their turn.
    statuses = {entries[u]["seq"]: entries[u]["status"] for u in buyers}
    assert [statuses[s] for s in range(1, PRE_QUEUED + 1)] == ["ADMITTED"] * LIMIT + ["WAITING"] * (PRE_QUEUED - LIMIT)
    # Late joiners come after every pre-queued buyer, in arrival order.
    assert [entries[u]["seq"] for u in late] == list(range(PRE_QUEUED + 1, PRE_QUEUED + LATE + 1))

    # The audit record reproduces the draw.
    draw = (await api.data("QueueDraw", {"eventId": eid}, organizer))["queueDraw"]
    assert draw["state"] == "DRAWN" and int(draw["seed"]) == SEED and len(draw["entryIds"]) == PRE_QUEUED
    assert draw["entriesHash"] == prequeue.entries_hash(draw["entryIds"])
    by_id = {str(d["_id"]): d["seq"] for d in entries.values()}
    again = prequeue.permutation(int(draw["seed"]), draw["entryIds"])
    assert [by_id[i] for i in again] == list(range(draw["firstSeq"], draw["firstSeq"] + PRE_QUEUED))
    # Only the organizer (or an admin) reads it.
    refused = await api.op("QueueDraw", {"eventId": eid}, make_token(buyers[0]))
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def opened_with(make_api, organizer, users: list[str]):
    """An API, and an event whose pre-queue these users joined, in this order, and whose sale has just opened."""
    api = await make_api(checkout_limit=LIMIT)
    eid, tid = await pre_queue_event(api, organizer)
    for user in users:
        await queue.join_queue(api.runtime, actor=Viewer(user_id=user), event_id=eid)
    await open_the_sale(api, eid, tid)
    return api, eid


async def test_one_draw_however_many_start_it_at_once(make_api, organizer):
    api, eid = await opened_with(make_api, organizer, [f"race-{i}" for i in range(60)])
    rt = api.runtime
    # The opening's job, the sweep and joins after the opening, all at once.
    outcomes = await asyncio.gather(
        queue.draw_pre_queue(rt, event_id=eid), queue.draw_pre_queue(rt, event_id=eid), queue.draw_where_due(rt),
        *(queue.join_queue(rt, actor=Viewer(user_id=f"after-{i}"), event_id=eid) for i in range(5)))
    assert sum(1 for o in outcomes[:3] if o) == 1, outcomes[:3]
    assert await api.db.queueDraws.count_documents({"_id": ObjectId(eid)}) == 1
    entries = await entries_by_user(api, eid)
    pre = sorted(e["seq"] for u, e in entries.items() if u.startswith("race-"))
    after = sorted(e["seq"] for u, e in entries.items() if u.startswith("after-"))
    assert pre == list(range(1, 61)) and after == list(range(61, 66))
    assert all(e["status"] in ("WAITING", "ADMITTED") for e in entries.values())


async def test_pre_queue_setting_and_window_rules(make_api, organizer):
    api = await make_api(checkout_limit=LIMIT)
    eid, tid = await pre_queue_event(api, organizer, minutes=30)
    for bad in (0, 1441, -5):
        refused = await api.mutate("UpdateEvent", {"id": eid, "input": {"queueOpensMinutesBefore": bad}}, organizer)
        assert codes(refused) == ["VALIDATION"] and refused["errors"][0]["field"] == "input.queueOpensMinutesBefore"
    assert (await api.db.events.find_one({"_id": ObjectId(eid)}))["queueOpensMinutesBefore"] == 30
    # The sale opens in a day, the queue 30 minutes before it: not yet.
    early = await api.mutate("JoinQueue", {"eventId": eid}, make_token("pq-early"))
    assert codes(early) == ["EVENT_NOT_ON_SALE"] and "queue opens at" in early["errors"][0]["message"]
    assert await api.db.eventQueue.count_documents({"eventId": ObjectId(eid)}) == 0
    # In the window: a PRE_QUEUE entry; joining again answers it; leaving takes it out of the draw.
    await api.db.eventTickets.update_one({"_id": ObjectId(tid)}, {"$set": {"saleStartsAtUtc": now_ms() + 600_000}})
    catalog.forget_sale_view(eid)
    stayer, leaver = make_token("pq-stay"), make_token("pq-leave")
    for token in (stayer, leaver, stayer):
        entry = (await api.ok("JoinQueue", {"eventId": eid}, token))["entry"]
        assert (entry["status"], entry["seq"], entry["position"]) == ("PRE_QUEUE", 0, None)
    assert (await api.ok("LeaveQueue", {"eventId": eid}, leaver))["entry"]["status"] == "LEFT"
    await open_the_sale(api, eid, tid)
    entry = (await api.ok("JoinQueue", {"eventId": eid}, make_token("pq-after")))["entry"]  # draws, then joins
    assert entry["seq"] == 2
    entries = await entries_by_user(api, eid)
    assert (entries["pq-stay"]["seq"], entries["pq-stay"]["status"]) == (1, "ADMITTED")
    assert entries["pq-leave"]["status"] == "LEFT"
    # Without a pre-queue setting (null), the event's queue is an ordinary one.
    cleared = await api.mutate("UpdateEvent", {"id": eid, "input": {"queueOpensMinutesBefore": None}}, organizer)
    assert codes(cleared) == [] and cleared["event"]["queueOpensMinutesBefore"] is None


async def test_a_join_written_as_the_draw_finished_goes_to_the_back(make_api, organizer):
    api, eid = await opened_with(make_api, organizer, [f"pq-{i}" for i in range(3)])
    rt = api.runtime
    assert await queue.draw_pre_queue(rt, event_id=eid, seed=7)
    # A join that saw the window open wrote its entry after the draw read the pre-queue.
    await api.db.eventQueue.insert_one({"_id": ObjectId(), "eventId": ObjectId(eid), "userId": "pq-straggler", "seq": 0,
                                        "status": "PRE_QUEUE", "joinedAtUtc": now_ms(), "expiresAtUtc": now_ms() + 60_000})
    catalog.forget_sale_view(eid)
    assert await queue.draw_where_due(rt) == 0  # the sweep: no second draw, the straggler to the back
    straggler = (await entries_by_user(api, eid))["pq-straggler"]
    assert (straggler["seq"], straggler["status"]) == (4, "ADMITTED")


async def test_cancelling_an_event_closes_its_pre_queue(make_api, organizer):
    api = await make_api(checkout_limit=LIMIT)
    eid, _ = await pre_queue_event(api, organizer)
    for user in ("pq-a", "pq-b"):
        assert (await api.ok("JoinQueue", {"eventId": eid}, make_token(user)))["entry"]["status"] == "PRE_QUEUE"
    await api.ok("CancelEvent", {"eventId": eid}, organizer)
    assert {e["status"] for e in (await entries_by_user(api, eid)).values()} == {"CLOSED"}


async def test_a_buyer_who_leaves_the_pre_queue_and_joins_again_is_pushed_the_new_entry(make_api, organizer):
    api = await make_api(checkout_limit=LIMIT, queue_cooldown_seconds=0)
    eid, _ = await pre_queue_event(api, organizer)
    token = make_token("pq-back")
    async with subscribe(connector_of(api), "QueueUpdates", {"eventId": eid}, token) as sub:
        await api.ok("JoinQueue", {"eventId": eid}, token)
        await sub.until("queueUpdates", lambda e: e["status"] == "PRE_QUEUE")
        await api.ok("LeaveQueue", {"eventId": eid}, token)
        await sub.until("queueUpdates", lambda e: e["status"] == "LEFT")
        await asyncio.sleep(0.01)  # a later join time than the place left
        assert (await api.ok("JoinQueue", {"eventId": eid}, token))["entry"]["status"] == "PRE_QUEUE"
        # Seq 0 both times: the new place is told apart from the old one by its join time.
        await sub.until("queueUpdates", lambda e: e["status"] == "PRE_QUEUE")
