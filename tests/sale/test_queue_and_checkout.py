"""M3 joinQueue, M4 leaveQueue and M6 startCheckout through the API: every refusal and its good twin.

Each refusal is reached with real HTTP requests built from the documents in
graphql/sale/, next to the request that succeeds when the condition is
lifted. After each scenario the event's slot counter (activeCheckouts) must
equal the number of ADMITTED entries (DESIGN invariant 2 and 7).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from tests.api_client import ApiClient
from tests.conftest import make_token
from tests.factories import (
    active_sessions,
    create_event,
    create_tickets,
    days_from_now,
    iso,
    on_sale_event,
    ticket_type_input,
)
from tests.factories import codes, join

UNKNOWN_ID = str(ObjectId())


# --- helpers ---------------------------------------------------------------------------


def result_of(payload: dict):
    """The payload's object field (entry, session...)."""
    (value,) = [v for k, v in payload.items() if k != "errors"]
    return value


async def refused(api: ApiClient, name: str, variables: dict, token: str | None, code: str) -> dict:
    """Send a mutation that must be refused with exactly `code`; the payload object is null."""
    payload = await api.mutate(name, variables, token)
    assert codes(payload) == [code], payload
    assert result_of(payload) is None, payload
    assert payload["errors"][0]["message"], payload
    return payload["errors"][0]


async def leave(api: ApiClient, token: str, event_id: str) -> dict:
    return (await api.ok("LeaveQueue", {"eventId": event_id}, token))["entry"]


async def start(api: ApiClient, event_id: str, token: str) -> dict:
    return (await api.ok("StartCheckout", {"eventId": event_id}, token))["session"]


async def my_entry(api: ApiClient, event_id: str, token: str) -> dict | None:
    return (await api.data("QueuePosition", {"eventId": event_id}, token))["queuePosition"]


async def slot_counts(api: ApiClient, event_id: str) -> tuple[int, int]:
    """(activeCheckouts on the event, ADMITTED entries of the event), read from the database."""
    event = await api.db.events.find_one({"_id": ObjectId(event_id)})
    admitted = await api.db.eventQueue.count_documents({"eventId": ObjectId(event_id), "status": "ADMITTED"})
    return event.get("activeCheckouts", 0), admitted


async def assert_slots(api: ApiClient, event_id: str, expected: int | None = None) -> None:
    active, admitted = await slot_counts(api, event_id)
    assert active == admitted, f"activeCheckouts {active} != ADMITTED entries {admitted}"
    if expected is not None:
        assert active == expected


def buyers(n: int, prefix: str = "buyer") -> list[str]:
    return [make_token(f"{prefix}-{i}") for i in range(n)]


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def purchase(api: ApiClient, event_id: str, ticket_type_id: str, quantity: int, token: str, key: str) -> dict:
    variables = {"input": {"eventId": event_id, "idempotencyKey": key,
                           "items": [{"ticketTypeId": ticket_type_id, "quantity": quantity}]}}
    return (await api.ok("PurchaseTickets", variables, token))["order"]


# --- UNAUTHENTICATED ------------------------------------------------------------------------


async def test_anonymous_callers_are_unauthenticated_signed_in_ones_are_not(api, organizer, buyer):
    event, _ = await on_sale_event(api, organizer)
    ev = {"eventId": event["id"]}
    for name in ("JoinQueue", "LeaveQueue", "StartCheckout"):
        await refused(api, name, ev, None, "UNAUTHENTICATED")
        # A token that is present but forged is no identity either.
        bad = make_token("buyer-1", secret="some-other-secret-that-is-long-enough")
        error = await refused(api, name, ev, bad, "UNAUTHENTICATED")
        assert "invalid token" in error["message"]
    assert await api.db.eventQueue.count_documents({}) == 0

    entry = await join(api, buyer, event["id"])
    assert entry["userId"] == "buyer-1" and entry["status"] == "ADMITTED"
    session = await start(api, event["id"], buyer)
    assert session["userId"] == "buyer-1" and session["status"] == "ACTIVE"
    # The anonymous caller still cannot leave on anyone's behalf.
    await refused(api, "LeaveQueue", ev, None, "UNAUTHENTICATED")
    assert (await my_entry(api, event["id"], buyer))["status"] == "ADMITTED"
    left = await leave(api, buyer, event["id"])
    assert left["status"] == "LEFT"
    await assert_slots(api, event["id"], 0)


# --- NOT_FOUND ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["JoinQueue", "LeaveQueue", "StartCheckout"])
@pytest.mark.parametrize("bad_id", [UNKNOWN_ID, "not-an-id", ""])
async def test_unknown_or_malformed_event_is_not_found(api, organizer, buyer, name, bad_id):
    event, _ = await on_sale_event(api, organizer)
    error = await refused(api, name, {"eventId": bad_id}, buyer, "NOT_FOUND")
    assert error["field"] == "eventId"
    assert await api.db.eventQueue.count_documents({}) == 0
    # The same request on a real event gets past the lookup.
    await join(api, buyer, event["id"])
    payload = await api.mutate(name, {"eventId": event["id"]}, buyer)
    assert payload["errors"] == [] and result_of(payload) is not None


# --- EVENT_CANCELLED ------------------------------------------------------------------------


async def test_cancelled_event_refuses_join_and_checkout(api, organizer):
    live, _ = await on_sale_event(api, organizer)
    doomed = await create_event(api, organizer, title="Doomed show")
    await create_tickets(api, organizer, doomed["id"], ticket_type_input())
    early, waiting_buyer = buyers(2)
    assert (await join(api, early, doomed["id"]))["status"] == "ADMITTED"
    await api.ok("CancelEvent", {"eventId": doomed["id"]}, organizer)

    await refused(api, "JoinQueue", {"eventId": doomed["id"]}, waiting_buyer, "EVENT_CANCELLED")
    await refused(api, "StartCheckout", {"eventId": doomed["id"]}, early, "EVENT_CANCELLED")
    # The cancellation closed the early buyer's place: there is nothing left to leave.
    await refused(api, "LeaveQueue", {"eventId": doomed["id"]}, early, "NOT_IN_QUEUE")
    assert (await my_entry(api, doomed["id"], early))["status"] == "CLOSED"
    await assert_slots(api, doomed["id"], 0)

    # Good twin: the same buyers on an event that is not cancelled.
    assert (await join(api, waiting_buyer, live["id"]))["status"] == "ADMITTED"
    assert (await start(api, live["id"], waiting_buyer))["status"] == "ACTIVE"
    await assert_slots(api, live["id"], 1)


# --- EVENT_NOT_ON_SALE ------------------------------------------------------------------------


async def test_sale_window_in_the_future_is_not_on_sale(api, organizer, buyer):
    later = await create_event(api, organizer, title="Later sale")
    await create_tickets(api, organizer, later["id"], ticket_type_input(
        saleStartsAt=iso(days_from_now(2)), saleEndsAt=iso(days_from_now(20))
    ))
    no_types = await create_event(api, organizer, title="No tickets yet")
    assert (await api.data("Event", {"id": later["id"]}))["event"]["status"] == "UPCOMING"

    await refused(api, "JoinQueue", {"eventId": later["id"]}, buyer, "EVENT_NOT_ON_SALE")
    await refused(api, "JoinQueue", {"eventId": no_types["id"]}, buyer, "EVENT_NOT_ON_SALE")
    assert await api.db.eventQueue.count_documents({}) == 0
    await refused(api, "StartCheckout", {"eventId": later["id"]}, buyer, "NOT_IN_QUEUE")
    assert await my_entry(api, later["id"], buyer) is None

    # Good twin: a window that opened yesterday.
    now_on, _ = await on_sale_event(api, organizer)
    entry = await join(api, buyer, now_on["id"])
    assert entry["status"] == "ADMITTED" and entry["seq"] == 1
    await assert_slots(api, now_on["id"], 1)
    await assert_slots(api, later["id"], 0)


# --- SOLD_OUT ---------------------------------------------------------------------------------


async def test_join_is_refused_once_every_ticket_is_sold(api, organizer):
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=2, maxPerPurchase=2))
    first, late = buyers(2)
    # Good twin: while stock is left, joining works.
    assert (await join(api, first, event["id"]))["status"] == "ADMITTED"
    await start(api, event["id"], first)
    await purchase(api, event["id"], general["id"], 2, first, "all-of-it")
    assert (await api.data("Event", {"id": event["id"]}))["event"]["status"] == "SOLD_OUT"

    await refused(api, "JoinQueue", {"eventId": event["id"]}, late, "SOLD_OUT")
    assert await my_entry(api, event["id"], late) is None
    # The buyer whose entry COMPLETED may not start a new place in a sold-out queue either.
    await refused(api, "JoinQueue", {"eventId": event["id"]}, first, "SOLD_OUT")
    assert (await my_entry(api, event["id"], first))["status"] == "COMPLETED"
    await assert_slots(api, event["id"], 0)


# --- QUEUE_COOLDOWN -----------------------------------------------------------------------------


async def test_rejoin_inside_the_cooldown_is_refused(api, organizer, buyer, settings):
    event, _ = await on_sale_event(api, organizer)
    joined = await join(api, buyer, event["id"])
    left = await leave(api, buyer, event["id"])
    assert left["status"] == "LEFT" and left["seq"] == joined["seq"]
    cooldown = (parse(left["cooldownUntil"]) - datetime.now(UTC)).total_seconds()
    assert settings.queue_cooldown_seconds - 60 < cooldown <= settings.queue_cooldown_seconds
    error = await refused(api, "JoinQueue", {"eventId": event["id"]}, buyer, "QUEUE_COOLDOWN")
    assert "join again" in error["message"]
    entry = await my_entry(api, event["id"], buyer)
    assert entry["status"] == "LEFT" and entry["seq"] == joined["seq"]
    await assert_slots(api, event["id"], 0)

    # Someone else (who never left) joins fine.
    other = make_token("buyer-2")
    assert (await join(api, other, event["id"]))["seq"] > joined["seq"]


async def test_without_a_cooldown_rejoin_gets_a_new_higher_seq(make_api, organizer):
    api = await make_api(queue_cooldown_seconds=0)
    event, _ = await on_sale_event(api, organizer)
    buyer, other = buyers(2)
    first = await join(api, buyer, event["id"])
    assert (await join(api, other, event["id"]))["seq"] > first["seq"]
    left = await leave(api, buyer, event["id"])
    assert left["status"] == "LEFT"
    await asyncio.sleep(0.01)  # let the (zero-length) cooldown pass the millisecond it was stamped in
    again = await join(api, buyer, event["id"])
    assert again["status"] == "ADMITTED"
    assert again["seq"] > first["seq"] and again["seq"] > 2
    assert again["cooldownUntil"] is None
    assert await api.db.eventQueue.count_documents({"eventId": ObjectId(event["id"]), "userId": "buyer-0"}) == 1
    await assert_slots(api, event["id"], 2)


# --- NOT_IN_QUEUE ---------------------------------------------------------------------------------


async def test_leave_or_checkout_without_a_live_entry_is_not_in_queue(api, organizer, buyer):
    event, _ = await on_sale_event(api, organizer)
    ev = {"eventId": event["id"]}
    await refused(api, "LeaveQueue", ev, buyer, "NOT_IN_QUEUE")
    await refused(api, "StartCheckout", ev, buyer, "NOT_IN_QUEUE")
    assert await api.db.checkoutSessions.count_documents({}) == 0

    # Good twin: after joining, both work.
    await join(api, buyer, event["id"])
    session = await start(api, event["id"], buyer)
    left = await leave(api, buyer, event["id"])
    assert left["status"] == "LEFT"
    # Leaving ends the session the admission had started.
    stored = await api.db.checkoutSessions.find_one({"_id": ObjectId(session["id"])})
    assert stored["status"] == "EXPIRED"

    # Leaving twice, or starting checkout after leaving, finds no live entry.
    await refused(api, "LeaveQueue", ev, buyer, "NOT_IN_QUEUE")
    await refused(api, "StartCheckout", ev, buyer, "NOT_IN_QUEUE")
    assert (await my_entry(api, event["id"], buyer))["status"] == "LEFT"
    await assert_slots(api, event["id"], 0)


async def test_leave_of_a_waiting_buyer_frees_no_slot(make_api, organizer):
    api = await make_api(checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    holder, waiter = buyers(2)
    await join(api, holder, event["id"])
    assert (await join(api, waiter, event["id"]))["status"] == "WAITING"
    left = await leave(api, waiter, event["id"])
    assert left["status"] == "LEFT" and left["position"] is None
    assert (await my_entry(api, event["id"], holder))["status"] == "ADMITTED"
    await assert_slots(api, event["id"], 1)


# --- CHECKOUT_LIMIT_REACHED / NOT_ADMITTED ----------------------------------------------------------


async def test_waiting_buyer_cannot_check_out_while_every_slot_is_taken(make_api, organizer):
    api = await make_api(checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    first, second = buyers(2)
    assert (await join(api, first, event["id"]))["status"] == "ADMITTED"
    waiting = await join(api, second, event["id"])
    assert waiting["status"] == "WAITING" and waiting["position"] == 1 and waiting["admittedAt"] is None

    error = await refused(api, "StartCheckout", {"eventId": event["id"]}, second, "CHECKOUT_LIMIT_REACHED")
    assert "1" in error["message"]  # tells the buyer their place
    assert (await my_entry(api, event["id"], second))["status"] == "WAITING"
    assert await api.db.checkoutSessions.count_documents({"userId": "buyer-1"}) == 0
    await assert_slots(api, event["id"], 1)

    # Good twin: the admitted buyer checks out; once they leave, the waiting one can too.
    assert (await start(api, event["id"], first))["status"] == "ACTIVE"
    await refused(api, "StartCheckout", {"eventId": event["id"]}, second, "CHECKOUT_LIMIT_REACHED")
    await leave(api, first, event["id"])
    session = await start(api, event["id"], second)
    assert session["status"] == "ACTIVE" and session["userId"] == "buyer-1"
    await assert_slots(api, event["id"], 1)


# --- CHECKOUT_EXPIRED -------------------------------------------------------------------------------


async def test_admission_not_used_in_time_is_checkout_expired(make_api, organizer):
    api = await make_api(checkout_expiry_seconds=1)
    event, _ = await on_sale_event(api, organizer)
    buyer, punctual = buyers(2)
    entry = await join(api, buyer, event["id"])
    assert entry["status"] == "ADMITTED"
    assert 0 < (parse(entry["expiresAt"]) - parse(entry["admittedAt"])).total_seconds() <= 1.01
    await asyncio.sleep(1.3)

    await refused(api, "StartCheckout", {"eventId": event["id"]}, buyer, "CHECKOUT_EXPIRED")
    assert (await my_entry(api, event["id"], buyer))["status"] == "EXPIRED"
    await assert_slots(api, event["id"], 0)
    assert await api.db.checkoutSessions.count_documents({}) == 0
    # Still expired on a second try: nothing came back to life.
    await refused(api, "StartCheckout", {"eventId": event["id"]}, buyer, "CHECKOUT_EXPIRED")

    # Good twins: a buyer who starts checkout at once gets a session; the expired one may join again.
    await join(api, punctual, event["id"])
    assert (await start(api, event["id"], punctual))["status"] == "ACTIVE"
    again = await join(api, buyer, event["id"])
    assert again["status"] == "ADMITTED" and again["seq"] > entry["seq"]
    assert (await start(api, event["id"], buyer))["status"] == "ACTIVE"
    await assert_slots(api, event["id"], 2)


async def test_session_that_ran_out_is_checkout_expired(make_api, organizer):
    api = await make_api(checkout_expiry_seconds=1)
    event, _ = await on_sale_event(api, organizer)
    buyer = make_token("buyer-0")
    await join(api, buyer, event["id"])
    session = await start(api, event["id"], buyer)
    assert (await start(api, event["id"], buyer))["id"] == session["id"]  # still open
    await asyncio.sleep(1.3)
    await refused(api, "StartCheckout", {"eventId": event["id"]}, buyer, "CHECKOUT_EXPIRED")
    stored = await api.db.checkoutSessions.find_one({"_id": ObjectId(session["id"])})
    assert stored["status"] == "EXPIRED"
    assert (await my_entry(api, event["id"], buyer))["status"] == "EXPIRED"
    await assert_slots(api, event["id"], 0)


# --- idempotency, order and positions -------------------------------------------------------------


async def test_join_is_idempotent_while_live(api, organizer, buyer):
    event, _ = await on_sale_event(api, organizer)
    first = await join(api, buyer, event["id"])
    second = await join(api, buyer, event["id"])
    assert second == first
    assert (await api.data("Event", {"id": event["id"]}))["event"]["id"] == event["id"]
    stored = await api.db.events.find_one({"_id": ObjectId(event["id"])})
    assert stored["nextQueueSeq"] == 1  # the repeat took no new number
    await assert_slots(api, event["id"], 1)


async def test_seq_strictly_increases_and_positions_are_one_based_among_waiting(make_api, organizer):
    api = await make_api(checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    people = buyers(5)
    entries = [await join(api, t, event["id"]) for t in people]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert [e["status"] for e in entries] == ["ADMITTED"] + ["WAITING"] * 4
    assert [e["position"] for e in entries] == [None, 1, 2, 3, 4]
    # Re-joining while WAITING changes nothing, position included.
    assert await join(api, people[3], event["id"]) == entries[3]

    async def positions() -> list[int | None]:
        return [(await my_entry(api, event["id"], t))["position"] for t in people]

    assert await positions() == [None, 1, 2, 3, 4]
    await leave(api, people[2], event["id"])  # someone in the middle leaves
    assert await positions() == [None, 1, None, 2, 3]
    await assert_slots(api, event["id"], 1)

    # The admitted buyer leaves: the next WAITING one (lowest seq) is admitted at once.
    await leave(api, people[0], event["id"])
    promoted = await my_entry(api, event["id"], people[1])
    assert promoted["status"] == "ADMITTED" and promoted["admittedAt"] is not None and promoted["position"] is None
    assert await positions() == [None, None, None, 1, 2]
    await assert_slots(api, event["id"], 1)

    # A newcomer goes to the back with a higher seq than anyone before.
    late = await join(api, make_token("late"), event["id"])
    assert late["seq"] > max(seqs) and late["position"] == 3


async def test_leaving_an_admitted_place_admits_the_next_buyer_in_seq_order(make_api, organizer):
    api = await make_api(checkout_limit=2)
    event, _ = await on_sale_event(api, organizer)
    people = buyers(4)
    for t in people:
        await join(api, t, event["id"])
    assert [(await my_entry(api, event["id"], t))["status"] for t in people] == ["ADMITTED", "ADMITTED", "WAITING", "WAITING"]
    await start(api, event["id"], people[1])  # an admitted buyer inside checkout leaves too
    await leave(api, people[1], event["id"])
    assert [(await my_entry(api, event["id"], t))["status"] for t in people] == ["ADMITTED", "LEFT", "ADMITTED", "WAITING"]
    await assert_slots(api, event["id"], 2)
    await leave(api, people[0], event["id"])
    assert (await my_entry(api, event["id"], people[3]))["status"] == "ADMITTED"
    await assert_slots(api, event["id"], 2)


# --- one session per buyer, even under concurrency ----------------------------------------------------


async def test_start_checkout_twice_returns_the_same_session(api, organizer, buyer):
    event, _ = await on_sale_event(api, organizer)
    await join(api, buyer, event["id"])
    first = await start(api, event["id"], buyer)
    second = await start(api, event["id"], buyer)
    assert second == first
    assert first["eventId"] == event["id"] and first["status"] == "ACTIVE"
    assert await active_sessions(api) == 1
    assert await api.db.checkoutSessions.count_documents({}) == 0  # its record is written when it ends
    await assert_slots(api, event["id"], 1)


async def test_concurrent_start_checkout_opens_exactly_one_session(api, organizer):
    event, _ = await on_sale_event(api, organizer)
    for round_ in range(3):
        token = make_token(f"racer-{round_}")
        await join(api, token, event["id"])
        payloads = await asyncio.gather(*(
            api.mutate("StartCheckout", {"eventId": event["id"]}, token) for _ in range(5)
        ))
        assert all(p["errors"] == [] for p in payloads), payloads
        ids = {p["session"]["id"] for p in payloads}
        assert len(ids) == 1
        assert await active_sessions(api, eventId=ObjectId(event["id"]), userId=f"racer-{round_}") == 1
        assert await api.db.checkoutSessions.count_documents({"userId": f"racer-{round_}"}) == 0
        stored = await api.db.eventQueue.find_one({"eventId": ObjectId(event["id"]), "userId": f"racer-{round_}"})
        assert str(stored["sessionId"]) == ids.pop()
    await assert_slots(api, event["id"], 3)


async def test_concurrent_joins_of_one_buyer_make_one_entry(make_api, organizer):
    api = await make_api(checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    holder = make_token("holder")
    await join(api, holder, event["id"])  # takes the only slot: the racer will wait
    racer = make_token("racer")
    payloads = await asyncio.gather(*(api.mutate("JoinQueue", {"eventId": event["id"]}, racer) for _ in range(10)))
    assert all(p["errors"] == [] for p in payloads), payloads
    assert len({p["entry"]["seq"] for p in payloads}) == 1
    assert {p["entry"]["status"] for p in payloads} == {"WAITING"}
    assert await api.db.eventQueue.count_documents({"eventId": ObjectId(event["id"]), "userId": "racer"}) == 1
    mine = await my_entry(api, event["id"], racer)
    assert mine["seq"] == payloads[0]["entry"]["seq"] and mine["position"] == 1
    later = await join(api, make_token("later"), event["id"])
    assert later["seq"] > mine["seq"] and later["position"] == 2
    await assert_slots(api, event["id"], 1)


async def test_concurrent_joins_of_an_admissible_buyer_take_one_slot(api, organizer):
    event, _ = await on_sale_event(api, organizer)
    racer = make_token("racer")
    payloads = await asyncio.gather(*(api.mutate("JoinQueue", {"eventId": event["id"]}, racer) for _ in range(10)))
    assert all(p["errors"] == [] for p in payloads), payloads
    assert len({p["entry"]["seq"] for p in payloads}) == 1
    assert await api.db.eventQueue.count_documents({"userId": "racer"}) == 1
    assert (await my_entry(api, event["id"], racer))["status"] == "ADMITTED"
    await assert_slots(api, event["id"], 1)


async def test_many_buyers_joining_at_once_never_exceed_the_limit(make_api, organizer):
    api = await make_api(checkout_limit=3)
    event, _ = await on_sale_event(api, organizer)
    people = buyers(12)
    payloads = await asyncio.gather(*(api.mutate("JoinQueue", {"eventId": event["id"]}, t) for t in people))
    assert all(p["errors"] == [] for p in payloads), payloads
    seqs = sorted(p["entry"]["seq"] for p in payloads)
    assert len(set(seqs)) == 12
    entries = [await my_entry(api, event["id"], t) for t in people]
    admitted = sorted(e["seq"] for e in entries if e["status"] == "ADMITTED")
    waiting = sorted((e["seq"], e["position"]) for e in entries if e["status"] == "WAITING")
    assert len(admitted) == 3
    assert [p for _, p in waiting] == list(range(1, 10))
    await assert_slots(api, event["id"], 3)
    # Once the joins have settled, a freed slot goes to the lowest WAITING seq.
    leaver = next(t for t, e in zip(people, entries) if e["status"] == "ADMITTED")
    await leave(api, leaver, event["id"])
    lowest = waiting[0][0]
    promoted = next(t for t, e in zip(people, entries) if e["seq"] == lowest)
    assert (await my_entry(api, event["id"], promoted))["status"] == "ADMITTED"
    await assert_slots(api, event["id"], 3)


async def test_a_slot_freed_while_a_join_is_in_flight_goes_to_that_buyer(make_api, organizer, monkeypatch):
    """The only slot is held when B takes a place (WAITING), and freed before B's entry is written:
    whoever freed it looked for WAITING buyers and found none. B's join must notice and admit B."""
    from app.queue import repository as queue_repo

    api = await make_api(checkout_limit=1)
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    a, b = buyers(2, "inflight")
    assert (await join(api, a, eid))["status"] == "ADMITTED"
    real_insert = queue_repo.insert_new

    async def insert_after_a_leaves(db, docs):
        if any(doc["userId"] == "inflight-1" for doc in docs):
            await leave(api, a, eid)  # between B's place and B's entry
        return await real_insert(db, docs)

    monkeypatch.setattr(queue_repo, "insert_new", insert_after_a_leaves)
    joined = await join(api, b, eid)
    assert joined["status"] == "ADMITTED", joined
    await assert_slots(api, eid, 1)


async def test_a_session_recorded_active_by_an_earlier_version_is_ended_with_its_entry(api, organizer, buyer):
    """Before 2026-11-26 a session's record was written ACTIVE when it started; it still ends."""
    event, _ = await on_sale_event(api, organizer)
    await join(api, buyer, event["id"])
    session = await start(api, event["id"], buyer)
    entry = await api.db.eventQueue.find_one({"sessionId": ObjectId(session["id"])})
    await api.db.checkoutSessions.insert_one({
        "_id": ObjectId(session["id"]), "eventId": entry["eventId"], "userId": entry["userId"], "queueEntryId": entry["_id"],
        "status": "ACTIVE", "createdAtUtc": entry["checkoutStartedAtUtc"], "expiresAtUtc": entry["expiresAtUtc"],
    })
    await leave(api, buyer, event["id"])
    stored = await api.db.checkoutSessions.find_one({"_id": ObjectId(session["id"])})
    assert stored["status"] == "EXPIRED" and stored["endedAtUtc"] is not None
