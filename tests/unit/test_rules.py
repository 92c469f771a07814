"""Pure rules, no server: sale status, DateTime scalar, tokens, cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.api.scalars import parse_datetime, serialize_datetime
from app.auth import issue_token, require_role, viewer_from_authorization
from app.catalog.dedupe import slug
from app.catalog.models import EventStatus, EventTicket, TicketType, derive_status
from app.catalog.service import decode_cursor
from app.errors import DomainError, ErrorCode
from app.timeutil import from_ms, to_ms

NOW = 1_800_000_000_000
HOUR = 3_600_000


def ticket(start: int, end: int, total: int = 10, sold: int = 0) -> EventTicket:
    return EventTicket(
        _id="0" * 24, eventId="1" * 24, type=TicketType.GENERAL, name="GA", priceCents=100, currency="USD",
        quantityTotal=total, quantitySold=sold, maxPerPurchase=4, saleStartsAtUtc=start, saleEndsAtUtc=end,
        createdAtUtc=0,
    )


@pytest.mark.parametrize(
    ("tickets", "stored", "expected"),
    [
        ([], EventStatus.UPCOMING, EventStatus.UPCOMING),
        ([ticket(NOW + HOUR, NOW + 2 * HOUR)], EventStatus.UPCOMING, EventStatus.UPCOMING),
        ([ticket(NOW - HOUR, NOW + HOUR)], EventStatus.UPCOMING, EventStatus.ON_SALE),
        ([ticket(NOW - HOUR, NOW + HOUR, sold=10)], EventStatus.ON_SALE, EventStatus.SOLD_OUT),
        # One type sold out, another still on sale.
        ([ticket(NOW - HOUR, NOW + HOUR, sold=10), ticket(NOW - HOUR, NOW + HOUR)], EventStatus.ON_SALE, EventStatus.ON_SALE),
        # Early bird over with stock left, general not yet open: waiting for the next window.
        ([ticket(NOW - 2 * HOUR, NOW - HOUR), ticket(NOW + HOUR, NOW + 2 * HOUR)], EventStatus.ON_SALE, EventStatus.UPCOMING),
        # Every window closed: nothing can be bought any more.
        ([ticket(NOW - 2 * HOUR, NOW - HOUR)], EventStatus.ON_SALE, EventStatus.SOLD_OUT),
        # The window's end is exclusive, its start inclusive.
        ([ticket(NOW, NOW + HOUR)], EventStatus.UPCOMING, EventStatus.ON_SALE),
        ([ticket(NOW - HOUR, NOW)], EventStatus.ON_SALE, EventStatus.SOLD_OUT),
        ([ticket(NOW - HOUR, NOW + HOUR)], EventStatus.CANCELLED, EventStatus.CANCELLED),
    ],
)
def test_derive_status(tickets, stored, expected):
    assert derive_status(stored, tickets, NOW) is expected


def test_datetime_scalar_round_trips_in_utc_with_milliseconds():
    parsed = parse_datetime("2027-03-01T20:30:00.123+01:00")
    assert serialize_datetime(parsed) == "2027-03-01T19:30:00.123Z"
    assert serialize_datetime(parse_datetime("2027-03-01T19:30:00Z")) == "2027-03-01T19:30:00.000Z"
    assert parse_datetime("2027-03-01T19:30:00").tzinfo is None  # the service names the field at fault
    with pytest.raises(ValueError):
        parse_datetime("next tuesday")
    with pytest.raises(ValueError):
        parse_datetime(1234)


def test_milliseconds_conversion_is_exact():
    moment = datetime(2027, 3, 1, 19, 30, 0, 999000, tzinfo=UTC)
    assert to_ms(moment) == 1803929400999
    assert from_ms(to_ms(moment)) == moment
    assert to_ms(moment.astimezone(timezone(timedelta(hours=-5)))) == 1803929400999


def test_tokens_and_roles():
    secret = "k" * 32
    viewer = viewer_from_authorization(secret, "Bearer " + issue_token(secret, "u1", ["staff"]))
    assert viewer.user_id == "u1" and viewer.roles == {"staff"}
    assert require_role(viewer, "staff") == "u1"
    with pytest.raises(DomainError) as refused:
        require_role(viewer, "organizer")
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert viewer_from_authorization(secret, "Bearer " + issue_token(secret, "u1", [], ttl_seconds=-1)).token_error == "token expired"
    assert viewer_from_authorization(secret, "Bearer " + issue_token("x" * 32, "u1", [])).token_error == "invalid token"
    assert viewer_from_authorization(secret, None).user_id is None
    with pytest.raises(ValueError):
        issue_token(secret, "u1", ["king"])


def test_cursor_garbage_is_a_validation_error_and_slugs_fold():
    with pytest.raises(DomainError) as bad:
        decode_cursor("!!!")
    assert bad.value.code is ErrorCode.VALIDATION and bad.value.problems[0].field == "after"
    assert slug("Renaissance World Tour!") == slug("renaissance  world-tour") == "renaissance-world-tour"


def test_a_waiting_seq_is_shown_closed_once_the_queue_closed_before_its_turn():
    from app.catalog.turns import Turns

    # Seqs 1-3 had their turns, 5 was given up, 4 and 6-8 wait.
    on_sale = Turns(next_seq=8, through=3, skipped=(5,), active=3, status="ON_SALE")
    assert not any(on_sale.closes(seq) for seq in range(1, 9))
    sold_out = on_sale._replace(status="SOLD_OUT")
    assert [seq for seq in range(1, 9) if sold_out.closes(seq)] == [4, 5, 6, 7, 8]
    # The sale reopened: seqs handed out before it closed stay closed, later ones wait again.
    reopened = on_sale._replace(closed_through=6, next_seq=10)
    assert [seq for seq in range(4, 11) if reopened.closes(seq)] == [4, 5, 6]
