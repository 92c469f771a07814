"""Group commit of the queue's hot commands (app/queue/groups.py, app/batches.py): joins that
arrive together share one write of their seqs and one insert of their entries, reads of
buyers' entries share one find, and each caller still gets its own answer."""

from __future__ import annotations

import asyncio

from bson import ObjectId

from app.appkeys import RUNTIME
from app.auth import Viewer
from app.catalog import turns
from app.errors import DomainError
from app.queue import repository as queue_repo
from app.queue import service as queue
from tests.factories import on_sale_event


def _join(rt, eid: str, user: str):
    return queue.join_queue(rt, actor=Viewer(user_id=user), event_id=eid)


async def test_a_buyer_twice_in_one_group_keeps_one_place_and_nobody_waits_behind_the_other(make_api, organizer):
    api = await make_api(checkout_limit=1)
    rt = api.app[RUNTIME]
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    assert (await _join(rt, eid, "holder")).entry.status.value == "ADMITTED"

    a, b, a_again, c = await asyncio.gather(*(_join(rt, eid, u) for u in ("a", "b", "a", "c")))
    assert a_again.entry.id == a.entry.id and a_again.entry.seq == a.entry.seq
    assert [a.position, b.position] == [1, 2]
    # The twin's seq (between b and c) was given up: c is third in line, not fourth (c's own
    # answer may have been computed just before the twin gave it up).
    assert c.entry.seq == a.entry.seq + 3 and c.position in (3, 4)
    counted = await turns.read(rt.db, eid)
    assert counted.waiting == 3 and (await queue.seen(rt, c.entry)).place == 3
    assert await api.db.eventQueue.count_documents({"eventId": ObjectId(eid)}) == 4


async def test_a_buyer_who_hangs_up_mid_group_keeps_the_others_answers_and_their_own_entry(make_api, organizer, monkeypatch):
    api = await make_api(checkout_limit=1)
    rt = api.app[RUNTIME]
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    assert (await _join(rt, eid, "holder")).entry.status.value == "ADMITTED"
    writing = asyncio.Event()
    real_insert = queue_repo.insert_new

    async def slow_insert(db, docs):
        writing.set()
        await asyncio.sleep(0.2)
        return await real_insert(db, docs)

    monkeypatch.setattr(queue_repo, "insert_new", slow_insert)
    quitter = asyncio.create_task(_join(rt, eid, "quitter"))
    stayer = asyncio.create_task(_join(rt, eid, "stayer"))
    await writing.wait()
    quitter.cancel()
    assert (await stayer).entry.status.value == "WAITING"
    # The group was written all the same: the buyer who hung up finds their place on return.
    again = await _join(rt, eid, "quitter")
    assert again.entry.status.value == "WAITING" and again.position == 1


async def test_reads_of_entries_arriving_together_are_one_find_and_see_earlier_writes(make_api, organizer, command_counter):
    api = await make_api(checkout_limit=1, db_listeners=[command_counter])
    rt = api.app[RUNTIME]
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    people = [f"reader-{i}" for i in range(12)]
    for user in people[:10]:
        await _join(rt, eid, user)

    command_counter.reset()
    found = await asyncio.gather(*(queue.get_entry(rt, event_id=eid, user_id=u) for u in people + people[:3]))
    assert command_counter.targets == ["find eventQueue"]
    assert [e.user_id if e else None for e in found] == people[:10] + [None, None] + people[:3]
    assert [e.seq for e in found[:10]] == list(range(1, 11))

    # A read asked for after a write is never answered from a group that started before it.
    await _join(rt, eid, "reader-10")
    assert (await queue.get_entry(rt, event_id=eid, user_id="reader-10")).seq == 11


async def test_checkouts_started_together_are_one_write_and_a_twin_gets_the_same_session(make_api, organizer, command_counter):
    api = await make_api(checkout_limit=10, db_listeners=[command_counter])
    rt = api.app[RUNTIME]
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    people = [f"starter-{i}" for i in range(8)]
    await asyncio.gather(*(_join(rt, eid, u) for u in people))

    command_counter.reset()
    starts = [queue.start_checkout(rt, actor=Viewer(user_id=u), event_id=eid) for u in people + people[:2]]
    sessions = await asyncio.gather(*starts)
    # One read of the entries and one update of many statements for the group; the two twins
    # lost their statement to the first start and read back which session won.
    assert command_counter.targets.count("update eventQueue") <= 2, command_counter.targets
    assert len(command_counter.commands) <= 5, command_counter.targets
    assert [s.user_id for s in sessions] == people + people[:2]
    assert sessions[8].id == sessions[0].id and sessions[9].id == sessions[1].id
    stored = {d["userId"]: str(d["sessionId"]) async for d in api.db.eventQueue.find({"eventId": ObjectId(eid)})}
    assert stored == {s.user_id: s.id for s in sessions}


async def test_stock_taken_together_is_one_write_when_all_fit_and_first_come_first_served_when_not(make_api, organizer, command_counter):
    from app.orders import service as orders
    from tests.factories import ticket_type_input

    api = await make_api(checkout_limit=20, db_listeners=[command_counter])
    rt = api.app[RUNTIME]
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=7, maxPerPurchase=2))
    eid = event["id"]
    people = [f"taker-{i}" for i in range(6)]
    await asyncio.gather(*(_join(rt, eid, u) for u in people))
    await asyncio.gather(*(queue.start_checkout(rt, actor=Viewer(user_id=u), event_id=eid) for u in people))

    async def buy(user: str, quantity: int) -> str:
        item = orders.PurchaseItem(ticket_type_id=general["id"], quantity=quantity)
        try:
            await orders.purchase_tickets(rt, actor=Viewer(user_id=user), event_id=eid, items=[item], idempotency_key=user)
        except DomainError as error:
            return error.problems[0].code.value
        return "bought"

    # Three buyers of one ticket each: their takes fit, and go in one guarded write.
    command_counter.reset()
    assert await asyncio.gather(*(buy(u, 1) for u in people[:3])) == ["bought"] * 3
    assert command_counter.targets.count("update eventTickets") == 1, command_counter.targets
    # Three buyers of two with four left: the sum does not fit, so the count read after that
    # refusal says who fits, in arrival order: the first two buy, in one more write, and the
    # third is refused, nothing of theirs kept: two writes of two guards each ("some left",
    # "exactly the rest"). Each on its own took six.
    command_counter.reset()
    assert await asyncio.gather(*(buy(u, 2) for u in people[3:])) == ["bought", "bought", "SOLD_OUT"]
    assert command_counter.targets.count("update eventTickets") == 4, command_counter.targets
    stock = await api.db.eventTickets.find_one({"_id": ObjectId(general["id"])})
    assert stock["quantitySold"] == 7
    assert await api.db.userTickets.count_documents({"eventId": ObjectId(eid)}) == 7
