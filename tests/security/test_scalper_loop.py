"""Issue 10: a buyer looping join -> startCheckout -> purchase for more than one order's worth."""

from __future__ import annotations

from tests.factories import buy, checkout, codes, on_sale_event, ticket_type_input


async def test_a_cooldown_after_a_purchase_stops_the_next_round(make_api, organizer, buyer):
    api = await make_api(queue_cooldown_after_purchase_seconds=600, checkout_limit=5)
    event, (general,) = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=100, maxPerPurchase=10))
    await checkout(api, buyer, event["id"])
    await buy(api, buyer, event["id"], [(general["id"], 10)], key="round-1")
    again = await api.mutate("JoinQueue", {"eventId": event["id"]}, buyer)
    assert codes(again) == ["QUEUE_COOLDOWN"], again
    assert "join again from" in again["errors"][0]["message"]
    assert (await api.db.eventTickets.find_one({"type": "GENERAL"}))["quantitySold"] == 10


async def test_without_a_cooldown_a_buyer_may_come_back_after_buying(make_api, organizer, buyer):
    api = await make_api(checkout_limit=5)  # QUEUE_COOLDOWN_AFTER_PURCHASE_SECONDS defaults to 0
    event, (general,) = await on_sale_event(api, organizer)
    await checkout(api, buyer, event["id"])
    await buy(api, buyer, event["id"], [(general["id"], 1)], key="once")
    again = await api.mutate("JoinQueue", {"eventId": event["id"]}, buyer)
    assert again["errors"] == [] and again["entry"]["status"] == "ADMITTED", again
