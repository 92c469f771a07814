"""The queue's turns (app/catalog/turns.py): used exactly once, whoever gives them, and
taken up even when the process that gave one died before admitting its buyer."""

from __future__ import annotations

import asyncio
import time

from bson import ObjectId

from app.catalog import turns
from tests.conftest import make_token
from tests.factories import on_sale_event


async def _join(api, eid: str, token: str) -> dict:
    return (await api.ok("JoinQueue", {"eventId": eid}, token))["entry"]


async def _entry(api, eid: str, user: str) -> dict:
    return await api.db.eventQueue.find_one({"eventId": ObjectId(eid), "userId": user})


async def _give_turn_and_die(api, eid: str, user: str, limit: int = 1) -> turns.Turn:
    """What a purchase does up to the moment its process is killed: the buyer's entry ends and
    the turn moves on with the slot, but the next buyer's entry is never admitted."""
    await api.db.eventQueue.update_one({"eventId": ObjectId(eid), "userId": user}, {"$set": {"status": "COMPLETED"}})
    return await turns.move_on(api.db, eid, limit, freed=True)


async def test_a_turn_given_by_a_process_that_died_is_taken_up_within_two_seconds(make_api, organizer):
    api = await make_api(sweep=True, checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    assert (await _join(api, eid, make_token("first")))["status"] == "ADMITTED"
    waiting = await _join(api, eid, make_token("next"))
    assert waiting["status"] == "WAITING"

    turn = await _give_turn_and_die(api, eid, "first")
    given_at = time.monotonic()
    assert turn.seq == waiting["seq"] and turn.turns.active == 1
    assert (await _entry(api, eid, "next"))["status"] == "WAITING"
    while (await _entry(api, eid, "next"))["status"] != "ADMITTED":
        assert time.monotonic() - given_at < 2.0, "the stranded turn was not taken up within 2 s"
        await asyncio.sleep(0.05)
    stored = await api.db.events.find_one({"_id": ObjectId(eid)})
    assert stored["activeCheckouts"] == 1


async def test_a_buyer_who_leaves_after_their_turn_came_passes_it_on(make_api, organizer):
    api = await make_api(checkout_limit=1)  # no sweep: only the leave can pass the turn on
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    await _join(api, eid, make_token("first"))
    second, third = await _join(api, eid, make_token("second")), await _join(api, eid, make_token("third"))
    turn = await _give_turn_and_die(api, eid, "first")
    assert turn.seq == second["seq"]

    left = await api.ok("LeaveQueue", {"eventId": eid}, make_token("second"))
    assert left["entry"]["status"] == "LEFT"
    assert (await _entry(api, eid, "third"))["status"] == "ADMITTED"
    stored = await api.db.events.find_one({"_id": ObjectId(eid)})
    assert (stored["activeCheckouts"], stored["admittedThrough"], stored["skippedSeqs"]) == (1, third["seq"], [])


async def test_positions_count_only_buyers_still_waiting_and_turns_skip_those_who_left(api, organizer):
    event, _ = await on_sale_event(api, organizer)  # CHECKOUT_LIMIT 5
    eid = event["id"]
    for n in range(5):
        assert (await _join(api, eid, make_token(f"in-{n}")))["status"] == "ADMITTED"
    waiting = [await _join(api, eid, make_token(f"wait-{n}")) for n in range(3)]
    assert [w["position"] for w in waiting] == [1, 2, 3]

    await api.ok("LeaveQueue", {"eventId": eid}, make_token("wait-0"))
    assert (await api.data("QueuePosition", {"eventId": eid}, make_token("wait-2")))["queuePosition"]["position"] == 2
    stored = await api.db.events.find_one({"_id": ObjectId(eid)})
    assert stored["skippedSeqs"] == [waiting[0]["seq"]]

    # A slot frees: the turn skips the buyer who left and goes to the next in line.
    await api.ok("LeaveQueue", {"eventId": eid}, make_token("in-0"))
    assert (await _entry(api, eid, "wait-1"))["status"] == "ADMITTED"
    assert (await api.data("QueuePosition", {"eventId": eid}, make_token("wait-2")))["queuePosition"]["position"] == 1
    stored = await api.db.events.find_one({"_id": ObjectId(eid)})
    assert (stored["admittedThrough"], stored["skippedSeqs"], stored["activeCheckouts"]) == (waiting[1]["seq"], [], 5)


async def test_a_repeated_join_gives_its_place_back(make_api, organizer):
    api = await make_api(checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    admitted, waiting = make_token("admitted"), make_token("waiting")
    first = await _join(api, eid, admitted)
    second = await _join(api, eid, waiting)
    # Each repeat took the next seq (with a slot, or behind one) and undid it: counters as before.
    assert await _join(api, eid, waiting) == second
    assert await _join(api, eid, admitted) == first
    stored = await api.db.events.find_one({"_id": ObjectId(eid)})
    assert (stored["nextQueueSeq"], stored["admittedThrough"], stored["activeCheckouts"]) == (2, 1, 1)

    # A place that is no longer the last cannot be undone: it is skipped, and positions do not move.
    place = await turns.take_place(api.db, eid, 1)
    await turns.take_place(api.db, eid, 1)
    assert not await turns.give_back_place(api.db, eid, place)
    assert await turns.skip(api.db, eid, place.seq) is False  # its turn had not come
    counted = await turns.read(api.db, eid)
    assert counted.skipped == (place.seq,) and not counted.has_turn(place.seq) and counted.position(place.seq + 1) == 2


async def test_a_join_deep_in_the_queue_is_two_writes_and_one_read_and_knows_its_position(make_api, organizer, command_counter):
    api = await make_api(checkout_limit=1, db_listeners=[command_counter])
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    for n in range(12):
        await _join(api, eid, make_token(f"ahead-{n}"))  # one admitted, eleven waiting
    command_counter.reset()
    deep = await _join(api, eid, make_token("deep"))
    assert (deep["status"], deep["position"]) == ("WAITING", 12)
    assert command_counter.targets == ["update events", "find events", "insert eventQueue"]


async def test_a_turn_that_came_before_its_entry_is_taken_up_with_the_next_admission_in_one_write(make_api, organizer):
    """Invariant 3 as the entries show it: seq 3's turn comes while its join is still writing its
    entry (deep in the queue, so the join does not look again); when seq 4's turn comes, the
    write that admits 4 admits 3 too, so nobody ever sees 4 ADMITTED while 3 waits."""
    api = await make_api(checkout_limit=2)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    for user in ("first", "second"):
        assert (await _join(api, eid, make_token(user)))["status"] == "ADMITTED"
    in_flight = await turns.take_place(api.db, eid, 2)  # seq 3: its entry is not written yet
    fourth = await _join(api, eid, make_token("fourth"))
    assert (in_flight.seq, in_flight.admitted, fourth["seq"], fourth["status"]) == (3, False, 4, "WAITING")

    await api.ok("LeaveQueue", {"eventId": eid}, make_token("first"))  # the turn goes to seq 3: nobody to admit
    assert (await turns.read(api.db, eid)).has_turn(3)
    now = int(time.time() * 1000)
    await api.db.eventQueue.insert_one({"eventId": ObjectId(eid), "userId": "third", "seq": 3, "status": "WAITING",
                                        "joinedAtUtc": now, "expiresAtUtc": now + 600_000, "history": []})

    await api.ok("LeaveQueue", {"eventId": eid}, make_token("second"))  # the turn goes to seq 4
    third, fourth = await _entry(api, eid, "third"), await _entry(api, eid, "fourth")
    assert (third["status"], fourth["status"]) == ("ADMITTED", "ADMITTED")
    assert third["admittedBy"] == fourth["admittedBy"]  # one write admitted both
    counted = await turns.read(api.db, eid)
    assert (counted.through, counted.active) == (4, 2)


async def test_a_buyer_who_joined_as_the_queue_closed_is_closed_not_admitted_when_it_reopens(make_api, organizer):
    api = await make_api(checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    assert (await _join(api, eid, make_token("first")))["status"] == "ADMITTED"
    late = await turns.take_place(api.db, eid, 1)  # seq 2: its join is still writing its entry...
    await turns.close(api.db, eid, slots=0)  # ...as the queue closes (and the sale reopens at once)
    now = int(time.time() * 1000)
    await api.db.eventQueue.insert_one({"eventId": ObjectId(eid), "userId": "late", "seq": late.seq, "status": "WAITING",
                                        "joinedAtUtc": now, "expiresAtUtc": now + 600_000, "history": []})
    counted = await turns.read(api.db, eid)
    assert counted.joined_as_it_closed(late.seq) and not counted.has_turn(late.seq)

    await api.ok("LeaveQueue", {"eventId": eid}, make_token("first"))  # a slot frees: not for the straggler
    assert (await _entry(api, eid, "late"))["status"] == "WAITING"
    assert (await turns.read(api.db, eid)).active == 0
    from app.appkeys import RUNTIME
    from app.queue import service as queue

    await queue.take_up_stranded_turns(api.app[RUNTIME])
    assert (await _entry(api, eid, "late"))["status"] == "CLOSED"


async def test_the_repair_counts_a_stranded_turn_as_a_held_slot(make_api, organizer):
    """A turn given by a process that died before admitting its buyer still holds its slot: the
    repair's recount must not free it, or taking the turn up later admits above the limit."""
    from app.appkeys import RUNTIME
    from app.queue import service as queue

    api = await make_api(checkout_limit=2)
    rt = api.app[RUNTIME]
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    for user in ("first", "second"):
        assert (await _join(api, eid, make_token(user)))["status"] == "ADMITTED"
    stranded = await _join(api, eid, make_token("stranded"))
    await _join(api, eid, make_token("behind"))
    turn = await _give_turn_and_die(api, eid, "first", limit=2)
    assert turn.seq == stranded["seq"] and (await _entry(api, eid, "stranded"))["status"] == "WAITING"

    assert await queue.recount_slots(rt, event_id=eid, settle_seconds=0.05) is None  # 1 ADMITTED + 1 stranded turn
    await queue.take_up_stranded_turns(rt)
    assert (await _entry(api, eid, "stranded"))["status"] == "ADMITTED"
    assert (await _entry(api, eid, "behind"))["status"] == "WAITING"
    admitted = await api.db.eventQueue.count_documents({"eventId": ObjectId(eid), "status": "ADMITTED"})
    assert admitted == (await turns.read(api.db, eid)).active == 2


async def test_slots_freed_together_give_as_many_turns_in_one_write_stepping_over_skipped_seqs(make_api, organizer):
    api = await make_api(checkout_limit=5)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    # Seqs 1..10 handed out; 1..3 had their turns; 4, 6 and 9 left before theirs; 5 slots held.
    await api.db.events.update_one({"_id": ObjectId(eid)}, {"$set": {
        "nextQueueSeq": 10, "admittedThrough": 3, "skippedSeqs": [4, 6, 9], "activeCheckouts": 5}})

    three = await turns.move_on(api.db, eid, 5, freed=3, most=3)
    assert (three.seq, three.given) == (8, 3)  # turns to 5, 7 and 8
    assert (three.turns.through, three.turns.skipped, three.turns.active) == (8, (9,), 5)
    # Two more slots free, but one buyer is left waiting (seq 10): one turn, one slot back.
    rest = await turns.move_on(api.db, eid, 5, freed=2, most=2)
    assert (rest.seq, rest.given) == (10, 1)
    assert (rest.turns.through, rest.turns.skipped, rest.turns.active) == (10, (), 4)
    # Nobody waits: a freed slot goes back to the pool.
    none = await turns.move_on(api.db, eid, 5, freed=1, most=1)
    assert (none.seq, none.given, none.turns.active) == (None, 0, 3)
