"""The sale path's view of an event: reused for a second, fresh at once after this process's writes."""

from __future__ import annotations

import asyncio

from bson import ObjectId

from app.catalog import sale_view
from app.catalog.sale_view import VIEW_MS
from tests.conftest import make_token
from tests.factories import create_tickets, on_sale_event, ticket_type_input


async def test_joins_within_a_second_read_the_event_once(api, organizer, command_counter):
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    command_counter.reset()
    await api.ok("JoinQueue", {"eventId": eid}, make_token("view-a"))
    first = list(command_counter.commands)
    command_counter.reset()
    await api.ok("JoinQueue", {"eventId": eid}, make_token("view-b"))
    second = list(command_counter.commands)
    # The first join read the event and its ticket types; the second reused them.
    assert len(first) - len(second) == 2, (first, second)


async def test_this_processs_own_catalog_writes_are_seen_at_once(api, organizer):
    event, _ = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=1, maxPerPurchase=1))
    eid = event["id"]
    await api.ok("JoinQueue", {"eventId": eid}, make_token("view-c"))  # the view now holds one type
    (vip,) = await create_tickets(api, organizer, eid, ticket_type_input(type="VIP", quantityTotal=3))
    await api.ok("StartCheckout", {"eventId": eid}, make_token("view-c"))
    bought = await api.mutate(
        "PurchaseTickets",
        {"input": {"eventId": eid, "idempotencyKey": "k", "items": [{"ticketTypeId": vip["id"], "quantity": 1}]}},
        make_token("view-c"),
    )
    assert bought["errors"] == [] and bought["order"]["tickets"][0]["ticketTypeId"] == vip["id"]


async def test_a_change_made_elsewhere_is_seen_within_the_views_life(api, organizer):
    """Another process cancelled the event (here: behind this process's back, in the database)."""
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    await api.ok("JoinQueue", {"eventId": eid}, make_token("view-d"))
    await api.db.events.update_one({"_id": ObjectId(eid)}, {"$set": {"status": "CANCELLED"}})
    await asyncio.sleep(VIEW_MS / 1000 + 0.05)
    refused = await api.mutate("JoinQueue", {"eventId": eid}, make_token("view-e"))
    assert [e["code"] for e in refused["errors"]] == ["EVENT_CANCELLED"]


async def test_a_crowd_arriving_together_shares_one_read(api, organizer, command_counter):
    """When a sale opens, hundreds of requests miss the view in the same millisecond."""
    event, _ = await on_sale_event(api, organizer)
    eid = event["id"]
    command_counter.reset()
    seen = await asyncio.gather(*(sale_view.sale_view(api.db, event_id=eid) for _ in range(50)))
    assert len({id(s[0]) for s in seen}) == 1
    assert sorted(command_counter.commands) == ["find", "find"], command_counter.targets
