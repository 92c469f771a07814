"""The catalog's input rules and the search ranking, as pure functions: no server, no app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.catalog.inputs import (
    MAX_NAME,
    MAX_QUANTITY,
    EventDraft,
    TicketTypeDraft,
    VenueDraft,
    check_event,
    check_ticket_type,
    check_venue,
)
from app.catalog.models import TicketType
from app.catalog.search import FIELD_WEIGHTS, WHOLE_WORD_BONUS, index_tokens, query_terms, relevance
from app.errors import Checker
from app.timeutil import to_ms

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def problems(check: Checker) -> dict[str, str]:
    return {p.field: p.message for p in check.problems}


def venue(**overrides) -> VenueDraft:
    return VenueDraft(**{"name": "Wembley", "city": "London", "country": "GB", "timezone": "Europe/London", **overrides})


def test_a_valid_venue_is_cleaned_and_raises_nothing():
    check = Checker()
    values = check_venue(check, venue(name="  Wembley  ", latitude=51.5, longitude=-0.28))
    assert check.problems == [] and values["name"] == "Wembley"


@pytest.mark.parametrize(("overrides", "field", "says"), [
    ({"name": "   "}, "input.name", "must not be empty"),
    ({"name": "x" * (MAX_NAME + 1)}, "input.name", f"at most {MAX_NAME}"),
    ({"city": None}, "input.city", "is required"),
    ({"timezone": "Mars/Olympus"}, "input.timezone", "IANA"),
    ({"timezone": "America"}, "input.timezone", "IANA"),  # a folder of the tz database, not a zone
    ({"timezone": "Europe/" + "x" * 300}, "input.timezone", "..."),  # too long for a path; not echoed whole
    ({"latitude": 91.0, "longitude": 0.0}, "input.latitude", "between -90 and 90"),
    ({"latitude": 10.0}, "input.latitude", "go together"),
    ({"capacity": -1}, "input.capacity", "not be negative"),
])
def test_each_bad_venue_field_is_named_with_its_reason(overrides, field, says):
    check = Checker()
    check_venue(check, venue(**overrides))
    assert says in problems(check)[field]


def test_an_edit_checks_only_the_fields_given():
    check = Checker()
    assert check_venue(check, VenueDraft(capacity=10), partial=True) == {"capacity": 10}
    assert check.problems == []


def test_an_event_must_start_in_the_future_and_end_after_it_starts_with_an_offset():
    check = Checker()
    check_event(check, EventDraft(title="Show", artist_id="a", artist_name="A", venue_id="v",
                                  starts_at=NOW - timedelta(days=1), ends_at=NOW - timedelta(days=2)), to_ms(NOW))
    assert problems(check) == {"input.startsAt": "must be in the future", "input.endsAt": "must be after startsAt"}

    naive = Checker()
    check_event(naive, EventDraft(title="Show", artist_id="a", artist_name="A", venue_id="v",
                                  starts_at=datetime(2027, 3, 1, 20, 0)), to_ms(NOW))
    assert "UTC offset" in problems(naive)["input.startsAt"]


def ticket(**overrides) -> TicketTypeDraft:
    return TicketTypeDraft(**{
        "type": TicketType.GENERAL, "price_cents": 5000, "quantity_total": 100,
        "sale_starts_at": NOW, "sale_ends_at": NOW + timedelta(days=10), **overrides})


def check_ticket(draft: TicketTypeDraft) -> dict[str, str]:
    check = Checker()
    check_ticket_type(check, draft, "input.ticketTypes.0", event_start=to_ms(NOW + timedelta(days=30)), event_end=None,
                      now=to_ms(NOW), max_per_purchase=10)
    return problems(check)


def test_a_valid_ticket_type_raises_nothing_and_upper_cases_its_currency():
    check = Checker()
    values = check_ticket_type(check, ticket(currency="gbp"), "input.ticketTypes.0", event_start=to_ms(NOW + timedelta(days=30)),
                               event_end=None, now=to_ms(NOW), max_per_purchase=10)
    assert check.problems == [] and values["currency"] == "GBP"


@pytest.mark.parametrize(("overrides", "field", "says"), [
    ({"price_cents": -1}, "priceCents", "not be negative"),
    ({"currency": "EURO"}, "currency", "ISO-4217"),
    ({"quantity_total": 0}, "quantityTotal", f"between 1 and {MAX_QUANTITY:,}"),
    ({"quantity_total": MAX_QUANTITY + 1}, "quantityTotal", "between 1"),
    ({"max_per_purchase": 11}, "maxPerPurchase", "between 1 and 10"),
    ({"sale_starts_at": NOW + timedelta(days=11)}, "saleStartsAt", "before saleEndsAt"),
    ({"sale_ends_at": NOW + timedelta(days=31)}, "saleEndsAt", "after the event starts"),
])
def test_each_bad_ticket_type_field_is_named_with_its_reason(overrides, field, says):
    assert says in check_ticket(ticket(**overrides))[f"input.ticketTypes.0.{field}"]


def test_index_tokens_and_query_terms_meet_on_stems_prefixes_and_folded_accents():
    tokens = set(index_tokens("Beyoncé: Renaissance World Tour"))
    assert {"beyonce", "renaissance", "renaiss", "re", "world", "tour"} <= tokens
    assert set(query_terms("the RENAISSANCE tours")) <= tokens  # stopword dropped, stems meet
    assert query_terms("the") == ["the"]  # a query of stopwords alone keeps them


def test_ranking_puts_whole_words_above_prefixes_and_title_above_artist_venue_and_city():
    title_word = relevance(["rock"], {"title": "Rock Night", "artist": "", "venue": "", "city": ""})
    artist_word = relevance(["rock"], {"title": "Night", "artist": "Rock Band", "venue": "", "city": ""})
    title_prefix = relevance(["roc"], {"title": "Rockets", "artist": "", "venue": "", "city": ""})
    city_word = relevance(["rock"], {"title": "", "artist": "", "venue": "", "city": "Rock"})
    assert title_word == WHOLE_WORD_BONUS + FIELD_WEIGHTS["title"]
    assert title_word > artist_word > city_word > title_prefix > 0
    assert relevance(["jazz"], {"title": "Rock", "artist": "", "venue": "", "city": ""}) == 0


def test_text_is_letters_of_any_script_tabs_and_newlines_and_nothing_that_hides_or_breaks():
    from app.text import MAX_TEXT, first_bad_text, text_problem

    for fine in ("Café Øst", "Москва", "東京ドーム", "Line 1\nLine 2\tend\r\n", "", "emoji 🎸"):
        assert text_problem(fine) is None, fine
    assert "lone surrogate" in text_problem("a\ud800b")
    assert "control character" in text_problem("a\x00b")
    assert "control character" in text_problem("bell\x07")
    assert "bidirectional" in text_problem("abc\u202edcba")
    assert "bidirectional" in text_problem("\u2066isolate\u2069")
    assert "longer than" in text_problem("x" * (MAX_TEXT + 1))
    assert first_bad_text({"input": {"items": [{"name": "ok"}, {"name": "b\x00d"}]}}) == (
        "input.items.1.name", "holds a control character (U+0000) at position 1")
    assert first_bad_text({"input": {"name": "ok", "n": 3, "tags": ["a", None]}}) is None


def test_a_bad_key_is_reported_at_its_dict_and_checked_once(monkeypatch):
    import app.text as text

    checked: list[str] = []
    real = text.text_problem
    monkeypatch.setattr(text, "text_problem", lambda value: checked.append(value) or real(value))
    assert text.first_bad_text({"input": {"b\u202ed": "fine"}}) == (
        "input", "holds a bidirectional control character (U+202E) at position 1")
    assert checked == ["input", "b\u202ed"]  # each key once; the bad key's value never
