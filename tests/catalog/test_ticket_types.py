"""createTickets (M2): ticket types, their defaults and rules, the event's sale status, and races."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from bson import ObjectId

from app.catalog import repository
from tests.conftest import make_token
from tests.factories import create_event, create_tickets, days_from_now, iso, ticket_type_input


def without(values: dict, *keys: str) -> dict:
    return {k: v for k, v in values.items() if k not in keys}


def tickets_vars(event_id: str, *types: dict) -> dict:
    return {"input": {"eventId": event_id, "ticketTypes": list(types)}}


def codes_and_fields(payload: dict) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


async def _ticket_types_written(api) -> int:
    return await api.db.eventTickets.count_documents({})


async def _read_event(api, event_id: str) -> dict:
    return (await api.data("Event", {"id": event_id}))["event"]


async def test_create_general_vip_and_early_bird_at_once(api, organizer):
    event = await create_event(api, organizer)
    created = await create_tickets(
        api, organizer, event["id"],
        ticket_type_input(type="GENERAL", name="Standing", priceCents=9900, quantityTotal=500),
        ticket_type_input(type="VIP", name="Golden Circle", priceCents=45000, quantityTotal=50, maxPerPurchase=2),
        ticket_type_input(type="EARLY_BIRD", name="Early", priceCents=6500, quantityTotal=100),
    )
    assert [t["type"] for t in created] == ["GENERAL", "VIP", "EARLY_BIRD"]
    by_type = {t["type"]: t for t in created}
    assert by_type["VIP"]["name"] == "Golden Circle"
    assert by_type["VIP"]["priceCents"] == 45000
    assert by_type["VIP"]["currency"] == "GBP"
    assert by_type["VIP"]["quantityTotal"] == 50
    assert by_type["VIP"]["quantitySold"] == 0
    assert by_type["VIP"]["quantityRemaining"] == 50
    assert by_type["VIP"]["maxPerPurchase"] == 2
    assert by_type["VIP"]["saleStartsAt"].endswith("Z") and by_type["VIP"]["saleEndsAt"].endswith("Z")
    assert all(t["eventId"] == event["id"] and t["onSale"] is True for t in created)
    assert len({t["id"] for t in created}) == 3

    read = await _read_event(api, event["id"])
    assert sorted(read["ticketTypes"], key=lambda t: t["id"]) == sorted(created, key=lambda t: t["id"])
    assert read["ticketsRemaining"] == 650
    assert await _ticket_types_written(api) == 3


async def test_defaults_for_name_currency_and_max_per_purchase(api, organizer):
    event = await create_event(api, organizer)
    bare = without(ticket_type_input(), "name", "currency", "maxPerPurchase")
    created = await create_tickets(
        api, organizer, event["id"],
        bare | {"type": "GENERAL"}, bare | {"type": "VIP"}, bare | {"type": "EARLY_BIRD"},
    )
    by_type = {t["type"]: t for t in created}
    assert by_type["GENERAL"]["name"] == "General admission"
    assert by_type["VIP"]["name"] == "VIP"
    assert by_type["EARLY_BIRD"]["name"] == "Early bird"
    assert {t["currency"] for t in created} == {"USD"}
    assert {t["maxPerPurchase"] for t in created} == {10}


async def test_explicit_nulls_take_the_defaults_too(api, organizer):
    event = await create_event(api, organizer)
    (ticket,) = await create_tickets(
        api, organizer, event["id"], ticket_type_input(name=None, currency=None, maxPerPurchase=None)
    )
    assert (ticket["name"], ticket["currency"], ticket["maxPerPurchase"]) == ("General admission", "USD", 10)


async def test_currency_is_upper_cased_and_trimmed(api, organizer):
    event = await create_event(api, organizer)
    created = await create_tickets(
        api, organizer, event["id"],
        ticket_type_input(type="GENERAL", currency="gbp"), ticket_type_input(type="VIP", currency=" eur "),
    )
    assert [t["currency"] for t in created] == ["GBP", "EUR"]
    stored = await api.db.eventTickets.find_one({"type": "GENERAL"})
    assert stored["currency"] == "GBP"


async def test_stored_ticket_type_keeps_utc_milliseconds_and_object_ids(api, organizer):
    event = await create_event(api, organizer)
    (ticket,) = await create_tickets(
        api, organizer, event["id"],
        ticket_type_input(saleStartsAt="2026-01-01T10:00:00+01:00", saleEndsAt=iso(days_from_now(29))),
    )
    doc = await api.db.eventTickets.find_one({"_id": ObjectId(ticket["id"])})
    assert doc["eventId"] == ObjectId(event["id"])
    assert doc["saleStartsAtUtc"] == 1767258000000
    assert isinstance(doc["saleEndsAtUtc"], int)
    assert (doc["quantityTotal"], doc["quantitySold"], doc["priceCents"]) == (100, 0, 9900)
    assert ticket["saleStartsAt"] == "2026-01-01T09:00:00.000Z"


# --- the event's sale status -------------------------------------------------


async def test_event_goes_on_sale_when_a_window_is_open_now(api, organizer):
    event = await create_event(api, organizer)
    assert (await _read_event(api, event["id"]))["status"] == "UPCOMING"
    await create_tickets(
        api, organizer, event["id"],
        ticket_type_input(type="GENERAL", saleStartsAt=iso(days_from_now(-1)), saleEndsAt=iso(days_from_now(10))),
        ticket_type_input(type="VIP", saleStartsAt=iso(days_from_now(5)), saleEndsAt=iso(days_from_now(10))),
    )
    read = await _read_event(api, event["id"])
    assert read["status"] == "ON_SALE"
    assert {t["type"]: t["onSale"] for t in read["ticketTypes"]} == {"GENERAL": True, "VIP": False}
    assert (await api.db.events.find_one({"_id": ObjectId(event["id"])}))["status"] == "ON_SALE"


async def test_event_stays_upcoming_when_every_window_is_in_the_future(api, organizer):
    event = await create_event(api, organizer)
    created = await create_tickets(
        api, organizer, event["id"],
        ticket_type_input(type="GENERAL", saleStartsAt=iso(days_from_now(1)), saleEndsAt=iso(days_from_now(10))),
        ticket_type_input(type="EARLY_BIRD", saleStartsAt=iso(days_from_now(2)), saleEndsAt=iso(days_from_now(3))),
    )
    assert [t["onSale"] for t in created] == [False, False]
    read = await _read_event(api, event["id"])
    assert read["status"] == "UPCOMING"
    assert read["ticketsRemaining"] == 200
    assert (await api.db.events.find_one({"_id": ObjectId(event["id"])}))["status"] == "UPCOMING"


async def test_adding_an_open_window_later_puts_an_upcoming_event_on_sale(api, organizer):
    event = await create_event(api, organizer)
    await create_tickets(
        api, organizer, event["id"],
        ticket_type_input(type="VIP", saleStartsAt=iso(days_from_now(3)), saleEndsAt=iso(days_from_now(10))),
    )
    assert (await _read_event(api, event["id"]))["status"] == "UPCOMING"
    await create_tickets(api, organizer, event["id"], ticket_type_input(type="GENERAL"))
    read = await _read_event(api, event["id"])
    assert read["status"] == "ON_SALE"
    assert len(read["ticketTypes"]) == 2


# --- rules, each with good and bad input --------------------------------------


@pytest.mark.parametrize("quantity", [1, 2, 1_000_000])
async def test_quantity_total_within_range_is_accepted(api, organizer, quantity):
    event = await create_event(api, organizer)
    (ticket,) = await create_tickets(api, organizer, event["id"], ticket_type_input(quantityTotal=quantity))
    assert ticket["quantityTotal"] == ticket["quantityRemaining"] == quantity


@pytest.mark.parametrize("price", [0, 1, 10_000_000])
async def test_non_negative_prices_are_accepted(api, organizer, price):
    event = await create_event(api, organizer)
    (ticket,) = await create_tickets(api, organizer, event["id"], ticket_type_input(priceCents=price))
    assert ticket["priceCents"] == price


@pytest.mark.parametrize("max_per_purchase", [1, 5, 10])
async def test_max_per_purchase_within_the_setting_is_accepted(api, organizer, max_per_purchase):
    event = await create_event(api, organizer)
    (ticket,) = await create_tickets(api, organizer, event["id"], ticket_type_input(maxPerPurchase=max_per_purchase))
    assert ticket["maxPerPurchase"] == max_per_purchase


async def test_a_sale_may_end_exactly_when_the_event_ends(api, organizer):
    ends = days_from_now(30) + timedelta(hours=3)
    event = await create_event(api, organizer, endsAt=iso(ends))
    (ticket,) = await create_tickets(api, organizer, event["id"], ticket_type_input(saleEndsAt=event["endsAt"]))
    assert ticket["saleEndsAt"] == event["endsAt"]


async def test_a_sale_may_run_past_the_start_when_the_event_has_an_end(api, organizer):
    event = await create_event(api, organizer)
    between = iso(days_from_now(30) + timedelta(hours=1))
    (ticket,) = await create_tickets(api, organizer, event["id"], ticket_type_input(saleEndsAt=between))
    assert ticket["saleEndsAt"].startswith(between[:19])


async def test_without_an_end_a_sale_may_end_exactly_when_the_event_starts(api, organizer):
    event = await create_event(api, organizer, endsAt=None)
    (ticket,) = await create_tickets(api, organizer, event["id"], ticket_type_input(saleEndsAt=event["startsAt"]))
    assert ticket["saleEndsAt"] == event["startsAt"]


def _event_end_plus(minutes: float) -> str:
    # The factory event ends 30 days + 3 hours from now; allow for the seconds the test takes.
    return iso(days_from_now(30) + timedelta(hours=3, minutes=minutes))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"quantityTotal": 0}, "quantityTotal"),
        ({"quantityTotal": -5}, "quantityTotal"),
        ({"quantityTotal": 1_000_001}, "quantityTotal"),
        ({"priceCents": -1}, "priceCents"),
        ({"currency": "US"}, "currency"),
        ({"currency": "USDX"}, "currency"),
        ({"currency": "12$"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"currency": "U D"}, "currency"),
        ({"maxPerPurchase": 0}, "maxPerPurchase"),
        ({"maxPerPurchase": -1}, "maxPerPurchase"),
        ({"maxPerPurchase": 11}, "maxPerPurchase"),
        ({"name": "x" * 201}, "name"),
        ({"name": "   "}, "name"),
        ({"saleStartsAt": (same := iso(days_from_now(5))), "saleEndsAt": same}, "saleStartsAt"),
        ({"saleStartsAt": iso(days_from_now(6)), "saleEndsAt": iso(days_from_now(5))}, "saleStartsAt"),
        ({"saleStartsAt": iso(days_from_now(-3)), "saleEndsAt": iso(days_from_now(-1))}, "saleEndsAt"),
        ({"saleEndsAt": _event_end_plus(120)}, "saleEndsAt"),
        ({"saleEndsAt": iso(days_from_now(40))}, "saleEndsAt"),
        ({"saleStartsAt": iso(days_from_now(-1)).removesuffix("Z")}, "saleStartsAt"),
        ({"saleEndsAt": iso(days_from_now(20)).removesuffix("Z")}, "saleEndsAt"),
    ],
)
async def test_create_tickets_rejects_bad_input_naming_the_field(api, organizer, overrides, field):
    event = await create_event(api, organizer)
    payload = await api.mutate("CreateTickets", tickets_vars(event["id"], ticket_type_input(**overrides)), organizer)
    assert payload["ticketTypes"] is None
    assert ("VALIDATION", f"input.ticketTypes.0.{field}") in codes_and_fields(payload), payload["errors"]
    assert all(e["code"] == "VALIDATION" and e["message"] for e in payload["errors"]), payload["errors"]
    assert await _ticket_types_written(api) == 0
    assert (await _read_event(api, event["id"]))["status"] == "UPCOMING"


async def test_without_an_end_a_sale_may_not_end_after_the_event_starts(api, organizer):
    event = await create_event(api, organizer, endsAt=None)
    after_start = iso(days_from_now(30) + timedelta(minutes=30))
    payload = await api.mutate("CreateTickets", tickets_vars(event["id"], ticket_type_input(saleEndsAt=after_start)), organizer)
    assert payload["ticketTypes"] is None
    assert codes_and_fields(payload) == [("VALIDATION", "input.ticketTypes.0.saleEndsAt")]
    assert await _ticket_types_written(api) == 0


async def test_max_per_purchase_follows_the_setting(api, organizer, settings):
    assert settings.max_tickets_per_purchase == 10
    event = await create_event(api, organizer)
    payload = await api.mutate(
        "CreateTickets",
        tickets_vars(event["id"], ticket_type_input(maxPerPurchase=settings.max_tickets_per_purchase + 1)),
        organizer,
    )
    assert codes_and_fields(payload) == [("VALIDATION", "input.ticketTypes.0.maxPerPurchase")]
    assert "10" in payload["errors"][0]["message"]


async def test_an_empty_list_of_ticket_types_is_refused(api, organizer):
    event = await create_event(api, organizer)
    payload = await api.mutate("CreateTickets", tickets_vars(event["id"]), organizer)
    assert payload["ticketTypes"] is None
    assert codes_and_fields(payload) == [("VALIDATION", "input.ticketTypes")]
    assert await _ticket_types_written(api) == 0


async def test_every_problem_is_reported_with_its_index(api, organizer):
    event = await create_event(api, organizer)
    payload = await api.mutate(
        "CreateTickets",
        tickets_vars(
            event["id"],
            ticket_type_input(type="GENERAL", priceCents=-1),
            ticket_type_input(type="VIP"),
            ticket_type_input(type="EARLY_BIRD", quantityTotal=0, currency="US"),
        ),
        organizer,
    )
    assert payload["ticketTypes"] is None
    assert sorted(codes_and_fields(payload)) == [
        ("VALIDATION", "input.ticketTypes.0.priceCents"),
        ("VALIDATION", "input.ticketTypes.2.currency"),
        ("VALIDATION", "input.ticketTypes.2.quantityTotal"),
    ]
    assert await _ticket_types_written(api) == 0


async def test_one_bad_type_means_nothing_is_written(api, organizer):
    event = await create_event(api, organizer)
    payload = await api.mutate(
        "CreateTickets",
        tickets_vars(event["id"], ticket_type_input(type="GENERAL"), ticket_type_input(type="VIP", quantityTotal=0)),
        organizer,
    )
    assert payload["ticketTypes"] is None
    assert codes_and_fields(payload) == [("VALIDATION", "input.ticketTypes.1.quantityTotal")]
    assert await _ticket_types_written(api) == 0
    read = await _read_event(api, event["id"])
    assert read["ticketTypes"] == []
    assert read["status"] == "UPCOMING"
    # The good type alone still goes through afterwards.
    assert len(await create_tickets(api, organizer, event["id"], ticket_type_input(type="GENERAL"))) == 1


# --- one type per kind per event ---------------------------------------------


async def test_a_type_the_event_already_has_is_a_duplicate(api, organizer):
    event = await create_event(api, organizer)
    await create_tickets(api, organizer, event["id"], ticket_type_input(type="VIP"))
    payload = await api.mutate(
        "CreateTickets",
        tickets_vars(event["id"], ticket_type_input(type="GENERAL"), ticket_type_input(type="VIP", name="VIP again")),
        organizer,
    )
    assert payload["ticketTypes"] is None
    assert codes_and_fields(payload) == [("DUPLICATE_TICKET_TYPE", "input.ticketTypes.1.type")]
    assert await _ticket_types_written(api) == 1
    assert [t["name"] for t in (await _read_event(api, event["id"]))["ticketTypes"]] == ["VIP"]


async def test_the_same_type_twice_in_one_request_is_a_duplicate(api, organizer):
    event = await create_event(api, organizer)
    payload = await api.mutate(
        "CreateTickets",
        tickets_vars(event["id"], ticket_type_input(type="EARLY_BIRD"), ticket_type_input(type="EARLY_BIRD", name="Again")),
        organizer,
    )
    assert payload["ticketTypes"] is None
    assert codes_and_fields(payload) == [("DUPLICATE_TICKET_TYPE", "input.ticketTypes.1.type")]
    assert await _ticket_types_written(api) == 0


async def test_the_same_type_on_another_event_is_fine(api, organizer):
    first = await create_event(api, organizer)
    second = await create_event(api, organizer, title="Second Night")
    await create_tickets(api, organizer, first["id"], ticket_type_input(type="VIP"))
    await create_tickets(api, organizer, second["id"], ticket_type_input(type="VIP"))
    assert await _ticket_types_written(api) == 2


def _assert_one_winner(bodies: list[dict]) -> None:
    for body in bodies:
        assert not body.get("errors"), body["errors"]
    payloads = [body["data"]["createTickets"] for body in bodies]
    succeeded = [p for p in payloads if p["errors"] == []]
    refused = [p for p in payloads if p["errors"]]
    assert len(succeeded) == 1, payloads
    assert len(refused) == 1, payloads
    assert succeeded[0]["ticketTypes"][0]["type"] == "GENERAL"
    assert refused[0]["ticketTypes"] is None
    assert [(e["code"], e["field"]) for e in refused[0]["errors"]] in (
        [("DUPLICATE_TICKET_TYPE", None)], [("DUPLICATE_TICKET_TYPE", "input.ticketTypes.0.type")]
    ), refused[0]["errors"]


async def test_concurrent_creates_of_the_same_type_let_exactly_one_through(api, organizer):
    # A few rounds: each fires two identical requests at once; whichever wins, the other is DUPLICATE_TICKET_TYPE.
    for round_ in range(5):
        event = await create_event(api, organizer, title=f"Race {round_}")
        variables = tickets_vars(event["id"], ticket_type_input(type="GENERAL"))
        bodies = await asyncio.gather(*(api.op("CreateTickets", variables, organizer) for _ in range(2)))
        assert await api.db.eventTickets.count_documents({"eventId": ObjectId(event["id"]), "type": "GENERAL"}) == 1
        _assert_one_winner(list(bodies))
    assert await _ticket_types_written(api) == 5


async def test_a_duplicate_that_slips_past_the_existing_type_check_is_still_duplicate_ticket_type(
    api, organizer, monkeypatch
):
    """Both requests read the event's types (none yet) before either writes: the unique index must decide."""
    event = await create_event(api, organizer)
    real_read = repository.ticket_types_by_event
    both_have_read = asyncio.Event()
    readers = 0

    async def read_then_wait_for_the_other(db, event_ids):
        nonlocal readers
        found = await real_read(db, event_ids)
        if not both_have_read.is_set():
            readers += 1
            if readers == 2:
                both_have_read.set()
            else:
                await asyncio.wait_for(both_have_read.wait(), timeout=10)
        return found

    monkeypatch.setattr(repository, "ticket_types_by_event", read_then_wait_for_the_other)
    variables = tickets_vars(event["id"], ticket_type_input(type="GENERAL"))
    bodies = await asyncio.gather(*(api.op("CreateTickets", variables, organizer) for _ in range(2)))
    assert both_have_read.is_set()
    assert await api.db.eventTickets.count_documents({"eventId": ObjectId(event["id"])}) == 1
    _assert_one_winner(list(bodies))


async def test_concurrent_creates_of_different_types_both_succeed(api, organizer):
    event = await create_event(api, organizer)
    bodies = await asyncio.gather(
        api.op("CreateTickets", tickets_vars(event["id"], ticket_type_input(type="GENERAL")), organizer),
        api.op("CreateTickets", tickets_vars(event["id"], ticket_type_input(type="VIP")), organizer),
    )
    for body in bodies:
        assert not body.get("errors"), body["errors"]
        assert body["data"]["createTickets"]["errors"] == [], body
    assert await _ticket_types_written(api) == 2
    assert (await _read_event(api, event["id"]))["status"] == "ON_SALE"


# --- who may, and on what -----------------------------------------------------


async def test_only_the_events_organizer_may_add_ticket_types(api, organizer, other_organizer):
    event = await create_event(api, organizer)
    payload = await api.mutate("CreateTickets", tickets_vars(event["id"], ticket_type_input()), other_organizer)
    assert payload["ticketTypes"] is None
    assert [e["code"] for e in payload["errors"]] == ["FORBIDDEN"]
    assert await _ticket_types_written(api) == 0
    assert (await _read_event(api, event["id"]))["status"] == "UPCOMING"


async def test_an_admin_may_add_ticket_types_to_any_event(api, organizer):
    event = await create_event(api, organizer)
    created = await create_tickets(api, make_token("root", "admin"), event["id"], ticket_type_input())
    assert created[0]["eventId"] == event["id"]


async def test_create_tickets_needs_an_organizer(api, organizer, buyer):
    event = await create_event(api, organizer)
    expired = make_token("org-1", "organizer", ttl=-10)
    for token, code in [(None, "UNAUTHENTICATED"), (buyer, "FORBIDDEN"), (expired, "UNAUTHENTICATED")]:
        payload = await api.mutate("CreateTickets", tickets_vars(event["id"], ticket_type_input()), token)
        assert payload["ticketTypes"] is None
        assert [e["code"] for e in payload["errors"]] == [code], (token, payload)
    assert await _ticket_types_written(api) == 0


@pytest.mark.parametrize("event_id", ["0" * 24, "5f9d1c2e8b3a4d6e7f801234", "nope", "", "x" * 24])
async def test_unknown_or_malformed_event_is_not_found(api, organizer, event_id):
    await create_event(api, organizer)
    payload = await api.mutate("CreateTickets", tickets_vars(event_id, ticket_type_input()), organizer)
    assert payload["ticketTypes"] is None
    assert codes_and_fields(payload) == [("NOT_FOUND", "input.eventId")]
    assert await _ticket_types_written(api) == 0


async def test_a_cancelled_event_takes_no_ticket_types(api, organizer):
    event = await create_event(api, organizer)
    await api.db.events.update_one({"_id": ObjectId(event["id"])}, {"$set": {"status": "CANCELLED"}})
    payload = await api.mutate("CreateTickets", tickets_vars(event["id"], ticket_type_input()), organizer)
    assert payload["ticketTypes"] is None
    assert [e["code"] for e in payload["errors"]] == ["EVENT_CANCELLED"]
    assert await _ticket_types_written(api) == 0


async def test_a_garbage_sale_time_is_a_top_level_validation_error(api, organizer):
    event = await create_event(api, organizer)
    body = await api.op("CreateTickets", tickets_vars(event["id"], ticket_type_input(saleStartsAt="not a date")), organizer)
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert await _ticket_types_written(api) == 0
