"""A buyer's whole day: join, admitted, checkout, buy, tickets, check-in."""

from __future__ import annotations

from tests.conftest import make_token
from tests.factories import gate_staff, on_sale_event, ticket_type_input


async def test_join_checkout_buy_and_check_in(api, organizer):
    event, (general, vip) = await on_sale_event(
        api, organizer, ticket_type_input(), ticket_type_input(type="VIP", priceCents=50000, quantityTotal=5)
    )
    buyer = make_token("buyer-1")
    joined = await api.ok("JoinQueue", {"eventId": event["id"]}, buyer)
    assert joined["entry"]["status"] == "ADMITTED"  # a slot was free
    assert joined["entry"]["seq"] == 1 and joined["entry"]["position"] is None
    session = (await api.ok("StartCheckout", {"eventId": event["id"]}, buyer))["session"]
    assert session["status"] == "ACTIVE"
    again = (await api.ok("StartCheckout", {"eventId": event["id"]}, buyer))["session"]
    assert again["id"] == session["id"]
    purchase = {"eventId": event["id"], "idempotencyKey": "k1",
                "items": [{"ticketTypeId": general["id"], "quantity": 2}, {"ticketTypeId": vip["id"], "quantity": 1}]}
    order = (await api.ok("PurchaseTickets", {"input": purchase}, buyer))["order"]
    assert order["totalCents"] == 2 * 9900 + 50000 and order["currency"] == "GBP"
    assert len(order["tickets"]) == 3
    assert len({t["ticketNumber"] for t in order["tickets"]}) == 3
    replay = (await api.ok("PurchaseTickets", {"input": purchase}, buyer))["order"]
    assert replay["id"] == order["id"] and len(replay["tickets"]) == 3
    entry = (await api.data("QueuePosition", {"eventId": event["id"]}, buyer))["queuePosition"]
    assert entry["status"] == "COMPLETED"
    mine = (await api.data("MyTickets", {}, buyer))["myTickets"]
    assert len(mine) == 3 and mine[0]["event"]["id"] == event["id"]
    read = (await api.data("Event", {"id": event["id"]}))["event"]
    assert read["ticketsRemaining"] == 100 + 5 - 3
    staff = await gate_staff(api, organizer, event["id"], "gate-1")
    code = order["tickets"][0]["confirmationCode"]
    scanned = await api.ok("CheckInTicket", {"confirmationCode": code}, staff)
    assert scanned["ticket"]["status"] == "USED"
    second = await api.mutate("CheckInTicket", {"confirmationCode": code}, staff)
    assert [e["code"] for e in second["errors"]] == ["TICKET_ALREADY_USED"]
