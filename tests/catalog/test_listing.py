"""events (Q1): order, keyset pagination, filters, input validation, and no N+1 on ticket types."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson import ObjectId

from app.auth import Viewer
from app.catalog import service as catalog
from app.catalog.inputs import EventDraft, TicketTypeDraft
from app.catalog.models import TicketType
from tests.factories import create_event, create_tickets, create_venue, days_from_now, iso, ticket_type_input

# Whole seconds, so that the ISO strings we send and the ones we get back compare exactly.
T0 = days_from_now(10).replace(microsecond=0)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def api_iso(dt: datetime) -> str:
    """How the API writes an instant: UTC with milliseconds and 'Z'."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def new_event(api, token, venue_id, title, hours, **overrides) -> dict:
    return await create_event(
        api, token, venue_id, title=title, startsAt=iso(at(hours)), endsAt=iso(at(hours + 3)), **overrides
    )


async def put_on_sale(api, token, event_id) -> None:
    """Open a GENERAL ticket sale now, so the event becomes ON_SALE."""
    await create_tickets(api, token, event_id, ticket_type_input(saleEndsAt=iso(days_from_now(5))))


async def events_page(api, **variables) -> dict:
    return (await api.data("Events", variables))["events"]


async def walk(api, first: int, filter: dict | None = None) -> tuple[list[dict], list[dict]]:
    """Every page from the start: (all nodes in order, the pages' pageInfo)."""
    nodes, infos, after = [], [], None
    while True:
        page = await events_page(api, first=first, after=after, filter=filter)
        nodes += [e["node"] for e in page["edges"]]
        infos.append(page["pageInfo"])
        if not page["pageInfo"]["hasNextPage"]:
            return nodes, infos
        assert len(page["edges"]) == first
        after = page["pageInfo"]["endCursor"]
        assert len(infos) < 100, "pagination does not terminate"


def titles(nodes: list[dict]) -> list[str]:
    return [n["title"] for n in nodes]


def error_code(body: dict) -> str:
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


# --- order ---------------------------------------------------------------------------


async def test_events_are_ordered_by_start_then_id(api, organizer):
    venue = await create_venue(api, organizer)
    for title, hours in [("D", 3), ("B1", 1), ("C", 2), ("B2", 1), ("A", 0), ("B3", 1)]:
        await new_event(api, organizer, venue["id"], title, hours)
    page = await events_page(api, first=20)
    nodes = [e["node"] for e in page["edges"]]
    assert titles(nodes) == ["A", "B1", "B2", "B3", "C", "D"]
    assert [n["startsAt"] for n in nodes] == sorted(n["startsAt"] for n in nodes)
    tied = [n["id"] for n in nodes if n["title"].startswith("B")]
    assert tied == sorted(tied)
    assert page["pageInfo"] == {"hasNextPage": False, "endCursor": page["edges"][-1]["cursor"]}


async def test_ties_on_start_are_broken_by_id_not_by_insertion_order(api, organizer):
    venue = await create_venue(api, organizer)
    for title in ["T1", "T2", "T3"]:
        await new_event(api, organizer, venue["id"], title, 5)
    # Inserted last, but with the smallest id of the tie: it must come first, on every page size.
    doc = await api.db.events.find_one({"title": "T1"})
    doc |= {"_id": ObjectId.from_datetime(datetime(2020, 1, 1, tzinfo=UTC)), "title": "T0", "dedupeKey": "clone"}
    await api.db.events.insert_one(doc)
    await new_event(api, organizer, venue["id"], "early", 1)
    await new_event(api, organizer, venue["id"], "late", 9)
    expected = ["early", "T0", "T1", "T2", "T3", "late"]
    for first in (1, 2, 4, 100):
        nodes, _ = await walk(api, first)
        assert titles(nodes) == expected, first


# --- pagination ----------------------------------------------------------------------


async def test_pagination_visits_every_event_exactly_once(api, organizer):
    venue = await create_venue(api, organizer)
    for i in range(11):
        # Pairs share a start time, so page boundaries fall inside ties too.
        await new_event(api, organizer, venue["id"], f"E{i:02}", i // 2)
    everything = titles([e["node"] for e in (await events_page(api, first=100))["edges"]])
    assert len(everything) == 11
    for first in (1, 2, 3, 5, 10, 11, 12):
        nodes, infos = await walk(api, first)
        assert titles(nodes) == everything, first
        assert len(infos) == max(1, -(-11 // first)), first
        assert all(info["hasNextPage"] for info in infos[:-1])
        assert infos[-1]["hasNextPage"] is False


async def test_cursors_are_per_edge_and_resume_right_after_their_edge(api, organizer):
    venue = await create_venue(api, organizer)
    for i in range(5):
        await new_event(api, organizer, venue["id"], f"E{i}", i)
    edges = (await events_page(api, first=5))["edges"]
    assert len({e["cursor"] for e in edges}) == 5
    for i, edge in enumerate(edges):
        rest = await events_page(api, first=10, after=edge["cursor"])
        assert titles([e["node"] for e in rest["edges"]]) == [f"E{j}" for j in range(i + 1, 5)]


async def test_last_page_has_no_next_page_and_ends_at_its_last_edge(api, organizer):
    venue = await create_venue(api, organizer)
    for i in range(5):
        await new_event(api, organizer, venue["id"], f"E{i}", i)
    first_page = await events_page(api, first=3)
    assert first_page["pageInfo"] == {"hasNextPage": True, "endCursor": first_page["edges"][-1]["cursor"]}
    last = await events_page(api, first=3, after=first_page["pageInfo"]["endCursor"])
    assert titles([e["node"] for e in last["edges"]]) == ["E3", "E4"]
    assert last["pageInfo"] == {"hasNextPage": False, "endCursor": last["edges"][-1]["cursor"]}
    # Exactly filling the page is still the last page.
    exact = await events_page(api, first=5)
    assert len(exact["edges"]) == 5
    assert exact["pageInfo"] == {"hasNextPage": False, "endCursor": exact["edges"][-1]["cursor"]}
    # Past the end: nothing, no next page.
    beyond = await events_page(api, first=3, after=last["pageInfo"]["endCursor"])
    assert beyond["edges"] == []
    assert beyond["pageInfo"]["hasNextPage"] is False


async def test_events_inserted_between_pages_appear_only_after_the_cursor(api, organizer):
    venue = await create_venue(api, organizer)
    for hours in (10, 20, 30, 40, 50, 60):
        await new_event(api, organizer, venue["id"], f"orig{hours}", hours)

    page1 = await events_page(api, first=2)
    seen = titles([e["node"] for e in page1["edges"]])
    assert seen == ["orig10", "orig20"]
    # Before the cursor (earlier start, or same start with a smaller id): never returned.
    await new_event(api, organizer, venue["id"], "before5", 5)
    await new_event(api, organizer, venue["id"], "before15", 15)
    doc = await api.db.events.find_one({"title": "orig20"})
    doc |= {"_id": ObjectId.from_datetime(datetime(2020, 1, 1, tzinfo=UTC)), "title": "before20tie", "dedupeKey": "x"}
    await api.db.events.insert_one(doc)
    # After the cursor (same start with a larger id, or a later start): returned, in place.
    await new_event(api, organizer, venue["id"], "after20tie", 20)
    await new_event(api, organizer, venue["id"], "after35", 35)

    page2 = await events_page(api, first=2, after=page1["pageInfo"]["endCursor"])
    seen += titles([e["node"] for e in page2["edges"]])
    await new_event(api, organizer, venue["id"], "before25", 25)
    await new_event(api, organizer, venue["id"], "after70", 70)
    await new_event(api, organizer, venue["id"], "after55", 55)

    after = page2["pageInfo"]["endCursor"]
    while True:
        page = await events_page(api, first=2, after=after)
        seen += titles([e["node"] for e in page["edges"]])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert seen == [
        "orig10", "orig20", "after20tie", "orig30", "after35", "orig40", "orig50", "after55", "orig60", "after70",
    ]
    assert len(seen) == len(set(seen))


async def test_pagination_keeps_the_filter_across_pages(api, organizer):
    london = await create_venue(api, organizer)
    paris = await create_venue(api, organizer, name="Accor Arena", city="Paris", country="FR", timezone="Europe/Paris")
    for i in range(8):
        await new_event(api, organizer, (london if i % 2 else paris)["id"], f"E{i}", i)
    nodes, infos = await walk(api, 2, {"city": "London"})
    assert titles(nodes) == ["E1", "E3", "E5", "E7"]
    assert {n["venue"]["city"] for n in nodes} == {"London"}
    assert infos[-1]["hasNextPage"] is False


async def test_the_default_page_is_twenty(api, organizer):
    venue = await create_venue(api, organizer)
    for i in range(21):
        await new_event(api, organizer, venue["id"], f"E{i:02}", i)
    page = await events_page(api)
    assert len(page["edges"]) == 20
    assert page["pageInfo"]["hasNextPage"] is True


# --- page size and cursor validation ---------------------------------------------------


async def test_first_zero_returns_no_edges_but_tells_whether_more_exist(api, organizer):
    empty = await events_page(api, first=0)
    assert empty == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}

    venue = await create_venue(api, organizer)
    for i in range(2):
        await new_event(api, organizer, venue["id"], f"E{i}", i)
    page = await events_page(api, first=0)
    assert page["edges"] == []
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["pageInfo"]["endCursor"] is None

    one = await events_page(api, first=1)
    more = await events_page(api, first=0, after=one["pageInfo"]["endCursor"])
    assert more["edges"] == [] and more["pageInfo"]["hasNextPage"] is True
    last = (await events_page(api, first=2))["pageInfo"]["endCursor"]
    done = await events_page(api, first=0, after=last)
    assert done["edges"] == [] and done["pageInfo"]["hasNextPage"] is False


async def test_first_up_to_one_hundred_is_accepted(api, organizer):
    venue = await create_venue(api, organizer)
    await new_event(api, organizer, venue["id"], "only", 1)
    page = await events_page(api, first=100)
    assert titles([e["node"] for e in page["edges"]]) == ["only"]


@pytest.mark.parametrize("first", [101, 1000, -1, -100])
async def test_first_out_of_range_is_a_validation_error(api, organizer, first):
    venue = await create_venue(api, organizer)
    await new_event(api, organizer, venue["id"], "only", 1)
    body = await api.op("Events", {"first": first})
    assert body["data"] is None
    assert error_code(body) == "VALIDATION"
    assert body["errors"][0]["extensions"].get("field") == "first"


GARBAGE_CURSORS = {
    "word": "garbage",
    "punctuation": "!!!",
    "percent": "%%%%",
    "one-char": "a",
    "non-ascii": "é",
    "no-separator": b64("hello"),
    "start-not-a-number": b64("abc:" + "0" * 24),
    "id-not-an-objectid": b64("123:xyz"),
    "id-not-hex": b64("1:" + "z" * 24),
    "id-missing": b64("1:"),
    "start-beyond-int64": b64("9" * 30 + ":" + "0" * 24),
}


@pytest.mark.parametrize("cursor", list(GARBAGE_CURSORS.values()), ids=list(GARBAGE_CURSORS))
async def test_a_cursor_the_api_did_not_issue_is_a_validation_error_never_a_500(api, organizer, cursor):
    venue = await create_venue(api, organizer)
    await new_event(api, organizer, venue["id"], "only", 1)
    body = await api.op("Events", {"first": 5, "after": cursor})
    assert body["data"] is None, body
    assert error_code(body) == "VALIDATION", body
    assert body["errors"][0]["message"] != "Internal server error"


# --- filters -------------------------------------------------------------------------


@pytest.fixture
async def catalog_of_events(api, organizer) -> dict[str, dict]:
    """Seven events over two cities, two artists and two sale states (ON_SALE / UPCOMING)."""
    london = await create_venue(api, organizer)
    paris = await create_venue(api, organizer, name="Accor Arena", city="Paris", country="FR", timezone="Europe/Paris")
    plan = [
        # title, hours, venue, artist, on sale
        ("L-bey-0", 0, london, "bey", True),
        ("P-bey-1", 1, paris, "bey", False),
        ("L-wkd-2", 2, london, "wkd", False),
        ("P-wkd-3", 3, paris, "wkd", True),
        ("L-bey-4", 4, london, "bey", False),
        ("P-bey-5", 5, paris, "bey", True),
        ("L-wkd-6", 6, london, "wkd", True),
    ]
    events = {}
    for title, hours, venue, artist, on_sale in plan:
        event = await new_event(api, organizer, venue["id"], title, hours, artistId=f"artist-{artist}", artistName=artist)
        if on_sale:
            await put_on_sale(api, organizer, event["id"])
        events[title] = event
    return events


async def filtered(api, filter: dict, first: int = 100) -> list[str]:
    page = await events_page(api, first=first, filter=filter)
    return titles([e["node"] for e in page["edges"]])


async def test_filter_by_status(api, catalog_of_events):
    assert await filtered(api, {"status": "ON_SALE"}) == ["L-bey-0", "P-wkd-3", "P-bey-5", "L-wkd-6"]
    assert await filtered(api, {"status": "UPCOMING"}) == ["P-bey-1", "L-wkd-2", "L-bey-4"]
    assert await filtered(api, {"status": "SOLD_OUT"}) == []
    page = await events_page(api, first=100, filter={"status": "ON_SALE"})
    assert {e["node"]["status"] for e in page["edges"]} == {"ON_SALE"}


async def test_filter_by_city(api, catalog_of_events):
    assert await filtered(api, {"city": "London"}) == ["L-bey-0", "L-wkd-2", "L-bey-4", "L-wkd-6"]
    assert await filtered(api, {"city": "Paris"}) == ["P-bey-1", "P-wkd-3", "P-bey-5"]
    assert await filtered(api, {"city": "Berlin"}) == []


async def test_filter_by_artist(api, catalog_of_events):
    assert await filtered(api, {"artistId": "artist-bey"}) == ["L-bey-0", "P-bey-1", "L-bey-4", "P-bey-5"]
    assert await filtered(api, {"artistId": "artist-wkd"}) == ["L-wkd-2", "P-wkd-3", "L-wkd-6"]
    assert await filtered(api, {"artistId": "artist-nobody"}) == []


async def test_starts_after_is_inclusive_and_starts_before_is_exclusive(api, catalog_of_events):
    assert await filtered(api, {"startsAfter": iso(at(4))}) == ["L-bey-4", "P-bey-5", "L-wkd-6"]
    assert await filtered(api, {"startsBefore": iso(at(2))}) == ["L-bey-0", "P-bey-1"]
    assert await filtered(api, {"startsAfter": iso(at(2)), "startsBefore": iso(at(5))}) == [
        "L-wkd-2", "P-wkd-3", "L-bey-4",
    ]
    # One millisecond either side of a start.
    assert await filtered(api, {"startsAfter": api_iso(at(2) + timedelta(milliseconds=1)), "startsBefore": iso(at(3))}) == []
    assert await filtered(api, {"startsAfter": iso(at(3)), "startsBefore": api_iso(at(3) + timedelta(milliseconds=1))}) == [
        "P-wkd-3"
    ]
    # An empty or inverted window matches nothing.
    assert await filtered(api, {"startsAfter": iso(at(3)), "startsBefore": iso(at(3))}) == []
    assert await filtered(api, {"startsAfter": iso(at(5)), "startsBefore": iso(at(1))}) == []


async def test_time_filters_honour_an_explicit_offset(api, catalog_of_events):
    plus_two = timezone(timedelta(hours=2))
    after = at(4).astimezone(plus_two).isoformat()  # the same instant, written as +02:00
    assert after.endswith("+02:00")
    assert await filtered(api, {"startsAfter": after}) == ["L-bey-4", "P-bey-5", "L-wkd-6"]


async def test_combined_filters_must_all_hold(api, catalog_of_events):
    assert await filtered(api, {"city": "London", "artistId": "artist-bey"}) == ["L-bey-0", "L-bey-4"]
    assert await filtered(api, {"city": "Paris", "status": "ON_SALE"}) == ["P-wkd-3", "P-bey-5"]
    assert await filtered(
        api, {"city": "Paris", "artistId": "artist-bey", "status": "ON_SALE", "startsAfter": iso(at(1))}
    ) == ["P-bey-5"]
    assert await filtered(
        api, {"artistId": "artist-wkd", "startsAfter": iso(at(2)), "startsBefore": iso(at(6))}
    ) == ["L-wkd-2", "P-wkd-3"]
    assert await filtered(api, {"city": "London", "artistId": "artist-wkd", "status": "UPCOMING"}) == ["L-wkd-2"]
    assert await filtered(api, {"city": "Paris", "artistId": "artist-wkd", "status": "UPCOMING"}) == []


@pytest.mark.parametrize("field", ["startsAfter", "startsBefore"])
@pytest.mark.parametrize("value", ["2027-03-01T19:30:00", "2027-03-01T19:30:00.000", "2027-03-01"])
async def test_a_filter_time_without_offset_is_a_validation_error(api, catalog_of_events, field, value):
    body = await api.op("Events", {"first": 10, "filter": {field: value}})
    assert body["data"] is None
    assert error_code(body) == "VALIDATION"
    assert body["errors"][0]["extensions"].get("field") == f"filter.{field}"


@pytest.mark.parametrize("value", ["tomorrow", "", "2027-13-45T99:00:00Z", 1735689600000])
async def test_a_filter_time_that_is_no_date_is_a_validation_error(api, catalog_of_events, value):
    body = await api.op("Events", {"first": 10, "filter": {"startsAfter": value}})
    assert body["data"] is None
    assert error_code(body) == "VALIDATION"


# --- round trips -----------------------------------------------------------------------


ORGANIZER = Viewer(user_id="org-1", roles=frozenset({"organizer"}))  # the `organizer` fixture's user


async def seed_events_with_two_ticket_types(rt, venue_id: str, numbers: range) -> None:
    """Through the service layer (much faster than one HTTP request per call)."""
    now = datetime.now(UTC)

    async def one(i: int) -> None:
        event = await catalog.create_event(
            rt, actor=ORGANIZER,
            draft=EventDraft(
                title=f"Show {i:03}", artist_id=f"artist-{i % 7}", artist_name=f"Artist {i % 7}", venue_id=venue_id,
                starts_at=at(i),
            ),
        )
        drafts = [
            TicketTypeDraft(
                type=kind, price_cents=5000, quantity_total=quantity,
                sale_starts_at=now - timedelta(days=1), sale_ends_at=now + timedelta(days=5),
            )
            for kind, quantity in ((TicketType.GENERAL, 100), (TicketType.VIP, 10))
        ]
        await catalog.create_ticket_types(rt, actor=ORGANIZER, event_id=event.id, drafts=drafts, max_per_purchase=10)

    numbers = list(numbers)
    for chunk in range(0, len(numbers), 10):
        await asyncio.gather(*(one(i) for i in numbers[chunk : chunk + 10]))


async def commands_for_a_full_page(api, command_counter, expected_events: int) -> list[str]:
    command_counter.reset()
    page = await events_page(api, first=100)
    commands = list(command_counter.commands)
    nodes = [e["node"] for e in page["edges"]]
    assert len(nodes) == expected_events
    for node in nodes:
        assert node["status"] == "ON_SALE"
        assert sorted(t["type"] for t in node["ticketTypes"]) == ["GENERAL", "VIP"]
        assert node["ticketsRemaining"] == 110
        assert all(t["onSale"] for t in node["ticketTypes"])
    return commands


async def commands_for_ten_then_a_hundred(api, organizer, command_counter) -> tuple[list[str], list[str]]:
    venue = await create_venue(api, organizer)
    await seed_events_with_two_ticket_types(api.runtime, venue["id"], range(10))
    assert await api.db.eventTickets.count_documents({}) == 20
    ten = await commands_for_a_full_page(api, command_counter, 10)
    await seed_events_with_two_ticket_types(api.runtime, venue["id"], range(10, 100))
    assert await api.db.eventTickets.count_documents({}) == 200
    hundred = await commands_for_a_full_page(api, command_counter, 100)
    return ten, hundred


async def test_a_page_loads_all_its_ticket_types_in_one_find(api, organizer, command_counter):
    ten, hundred = await commands_for_ten_then_a_hundred(api, organizer, command_counter)
    # One find for the events, one for all their ticket types (the DataLoader's batch): no N+1.
    assert Counter(ten)["find"] == 2, ten
    assert Counter(hundred)["find"] == 2, hundred
    assert set(ten) <= {"find", "getMore"} and set(hundred) <= {"find", "getMore"}, (ten, hundred)


async def test_a_full_page_costs_the_same_round_trips_as_a_small_one(api, organizer, command_counter):
    ten, hundred = await commands_for_ten_then_a_hundred(api, organizer, command_counter)
    # Nothing grows with the page: 100 events (200 ticket types) cost exactly what 10 cost.
    assert ten == ["find", "find"], ten
    assert hundred == ten, (ten, hundred)
