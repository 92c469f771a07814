"""Issue 10, check-in per event: a gate checks tickets in for its own event, and only the event's
organizer, staff they assigned to it, and admins may scan there (docs/DECISIONS.md, Check-in)."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from app.catalog import gate as gates
from tests.conftest import make_token
from tests.factories import buy, checkout, codes, gate_staff, on_sale_event, ticket_type_input

ADMIN = make_token("root", "admin")


async def ticket_status(api, code: str) -> str:
    return (await api.db.userTickets.find_one({"confirmationCode": code}))["status"]


async def sold_tickets(api, organizer, buyer, quantity: int = 2) -> tuple[dict, list[str]]:
    """An event of `organizer` and the confirmation codes of `quantity` tickets `buyer` bought for it."""
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(maxPerPurchase=10))
    await checkout(api, buyer, event["id"])
    order = await buy(api, buyer, event["id"], [(general["id"], quantity)], key=event["id"])
    return event, [t["confirmationCode"] for t in order["tickets"]]


def scan(code: str, event_id: str | None = None) -> dict:
    return {"confirmationCode": code} | ({"eventId": event_id} if event_id is not None else {})


async def test_assigned_staff_check_in_and_unassigned_staff_get_nowhere(api, organizer, buyer):
    event, (code, other) = await sold_tickets(api, organizer, buyer)
    stranger = make_token("gate-1", "staff")  # the same user, before being assigned
    at_gate = await api.mutate("CheckInTicket", scan(code, event["id"]), stranger)
    assert codes(at_gate) == ["FORBIDDEN"] and at_gate["errors"][0]["field"] == "eventId" and at_gate["ticket"] is None
    # Without an event, the real code is answered exactly as a code that does not exist.
    real = await api.mutate("CheckInTicket", scan(code), stranger)
    unknown = await api.mutate("CheckInTicket", scan("NO-SUCH-CODE"), stranger)
    assert real == unknown and codes(real) == ["NOT_FOUND"]
    assert await ticket_status(api, code) == "VALID"

    staff = await gate_staff(api, organizer, event["id"], "gate-1")
    scanned = (await api.ok("CheckInTicket", scan(code, event["id"]), staff))["ticket"]
    assert scanned["status"] == "USED" and scanned["eventId"] == event["id"]
    # The old form, without the event, works for them too: checked against the ticket's own event.
    assert (await api.ok("CheckInTicket", scan(other), staff))["ticket"]["status"] == "USED"
    again = await api.mutate("CheckInTicket", scan(code, event["id"]), staff)
    assert codes(again) == ["TICKET_ALREADY_USED"]


async def test_the_events_organizer_checks_in_and_another_organizer_does_not(api, organizer, other_organizer, buyer):
    event, (code, other) = await sold_tickets(api, organizer, buyer)
    refused = await api.mutate("CheckInTicket", scan(code, event["id"]), other_organizer)
    assert codes(refused) == ["FORBIDDEN"] and refused["ticket"] is None
    real = await api.mutate("CheckInTicket", scan(code), other_organizer)
    assert real == await api.mutate("CheckInTicket", scan("NO-SUCH-CODE"), other_organizer)
    assert codes(real) == ["NOT_FOUND"] and await ticket_status(api, code) == "VALID"
    # The other organizer's own gate staff are no way in either.
    await on_sale_event(api, other_organizer)
    assert codes(await api.mutate("CheckInTicket", scan(code), make_token("org-2", "staff"))) == ["NOT_FOUND"]

    assert (await api.ok("CheckInTicket", scan(code, event["id"]), organizer))["ticket"]["status"] == "USED"
    assert (await api.ok("CheckInTicket", scan(other), organizer))["ticket"]["status"] == "USED"


async def test_an_admin_checks_in_at_any_event(api, organizer, buyer):
    event, (code, other) = await sold_tickets(api, organizer, buyer)
    assert (await api.ok("CheckInTicket", scan(code, event["id"]), ADMIN))["ticket"]["status"] == "USED"
    assert (await api.ok("CheckInTicket", scan(other), ADMIN))["ticket"]["status"] == "USED"


async def test_a_ticket_of_another_event_is_wrong_event_and_stays_valid(api, organizer, buyer):
    here, (local_code,) = await sold_tickets(api, organizer, buyer, 1)
    there, (code, used_code) = await sold_tickets(api, organizer, buyer)
    await api.ok("CheckInTicket", scan(used_code, there["id"]), organizer)
    for token in (await gate_staff(api, organizer, here["id"]), organizer, ADMIN):
        for scanned in (code, used_code):
            payload = await api.mutate("CheckInTicket", scan(scanned, here["id"]), token)
            assert codes(payload) == ["WRONG_EVENT"] and payload["ticket"] is None, payload
            assert payload["errors"][0]["field"] == "confirmationCode"
    assert await ticket_status(api, code) == "VALID"
    assert (await api.ok("CheckInTicket", scan(code, there["id"]), organizer))["ticket"]["status"] == "USED"
    assert await ticket_status(api, local_code) == "VALID"


async def test_two_assigned_gates_scanning_one_code_at_once_let_it_in_once(api, organizer, buyer):
    event, tickets = await sold_tickets(api, organizer, buyer, 6)
    gates_of_event = [await gate_staff(api, organizer, event["id"], f"gate-{n}") for n in range(2)]
    for i, code in enumerate(tickets):
        at = event["id"] if i % 2 else None  # with and without the event named
        answers = await asyncio.gather(*(api.mutate("CheckInTicket", scan(code, at), g) for g in gates_of_event))
        assert sorted(tuple(codes(a)) for a in answers) == [(), ("TICKET_ALREADY_USED",)], answers
    assert await api.db.userTickets.count_documents({"status": "USED"}) == 6


async def test_staff_are_assigned_and_unassigned_by_the_events_organizer_only(api, organizer, other_organizer, buyer):
    event, (code, _) = await sold_tickets(api, organizer, buyer)
    wanted = {"eventId": event["id"], "userId": "gate-1"}
    for token, expected in ((None, "UNAUTHENTICATED"), (buyer, "FORBIDDEN"), (make_token("gate-1", "staff"), "FORBIDDEN"),
                            (other_organizer, "FORBIDDEN")):
        for mutation in ("AssignEventStaff", "UnassignEventStaff"):
            payload = await api.mutate(mutation, wanted, token)
            assert codes(payload) == [expected] and payload["staff"] is None, (mutation, payload)
    assert "gateStaff" not in await api.db.events.find_one({"_id": ObjectId(event["id"])})

    assigned = (await api.ok("AssignEventStaff", wanted, organizer))["staff"]
    assert assigned == {"eventId": event["id"], "userIds": ["gate-1"]}
    twice = (await api.ok("AssignEventStaff", wanted, organizer))["staff"]
    assert twice["userIds"] == ["gate-1"]
    by_admin = (await api.ok("AssignEventStaff", wanted | {"userId": "gate-2"}, ADMIN))["staff"]
    assert by_admin["userIds"] == ["gate-1", "gate-2"]
    assert (await api.data("EventStaff", {"eventId": event["id"]}, organizer))["eventStaff"]["userIds"] == ["gate-1", "gate-2"]
    peek = await api.op("EventStaff", {"eventId": event["id"]}, other_organizer)
    assert peek["data"] is None and peek["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # The event's public reads carry no staff list and still work with one stored.
    read = await api.op("Event", {"id": event["id"]})
    assert "errors" not in read and "gate-1" not in str(read)

    left = (await api.ok("UnassignEventStaff", wanted, organizer))["staff"]
    assert left["userIds"] == ["gate-2"]
    assert (await api.ok("UnassignEventStaff", wanted, organizer))["staff"]["userIds"] == ["gate-2"]
    payload = await api.mutate("CheckInTicket", scan(code, event["id"]), make_token("gate-1", "staff"))
    assert codes(payload) == ["FORBIDDEN"] and await ticket_status(api, code) == "VALID"


async def test_bad_ids_get_typed_errors_and_change_nothing(api, organizer, buyer):
    event, (code, _) = await sold_tickets(api, organizer, buyer)
    staff = await gate_staff(api, organizer, event["id"])
    for bad in ("not-an-id", str(ObjectId()), ""):
        payload = await api.mutate("CheckInTicket", scan(code, bad), staff)
        assert codes(payload) == ["NOT_FOUND"] and payload["errors"][0]["field"] == "eventId", payload
        payload = await api.mutate("AssignEventStaff", {"eventId": bad, "userId": "gate-9"}, organizer)
        assert codes(payload) == ["NOT_FOUND"] and payload["errors"][0]["field"] == "eventId", payload
    for bad in ("", "   ", "x" * (gates.MAX_USER_ID_LENGTH + 1)):
        for mutation in ("AssignEventStaff", "UnassignEventStaff"):
            payload = await api.mutate(mutation, {"eventId": event["id"], "userId": bad}, organizer)
            assert codes(payload) == ["VALIDATION"] and payload["errors"][0]["field"] == "userId", payload
    assert await ticket_status(api, code) == "VALID"
    assert (await api.db.events.find_one({"_id": ObjectId(event["id"])}))["gateStaff"] == ["gate-1"]


async def test_an_event_has_a_bounded_number_of_gate_staff(api, organizer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(gates, "MAX_GATE_STAFF", 2)
    event, _ = await on_sale_event(api, organizer)
    assigned = await asyncio.gather(*(
        api.mutate("AssignEventStaff", {"eventId": event["id"], "userId": f"gate-{n}"}, organizer) for n in range(4)
    ))
    assert sorted(tuple(codes(a)) for a in assigned) == [(), (), ("VALIDATION",), ("VALIDATION",)], assigned
    stored = (await api.db.events.find_one({"_id": ObjectId(event["id"])}))["gateStaff"]
    assert len(stored) == 2
    # Assigning someone already there is still fine when the list is full.
    assert (await api.ok("AssignEventStaff", {"eventId": event["id"], "userId": stored[0]}, organizer))["staff"]["userIds"] == stored


async def test_the_scan_limit_comes_before_the_gate(make_api, organizer, buyer):
    api = await make_api(checkin_per_second=1, checkin_burst=3)
    event, (code, _) = await sold_tickets(api, organizer, buyer)
    stranger = make_token("gate-x", "staff")
    answers = [codes(await api.mutate("CheckInTicket", scan(code, event["id"]), stranger)) for _ in range(4)]
    assert answers == [["FORBIDDEN"]] * 3 + [["RATE_LIMITED"]]
    assert await ticket_status(api, code) == "VALID"
