"""The queue's pace and a waiting buyer's estimated wait (app/queue/pace.py), on a clock of our own."""

from __future__ import annotations

from app.catalog.turns import Turns
from app.queue.pace import MIN_SPAN_S, MOST_EVENTS, WINDOW_S, Pace, Paces, served


def turns(through: int, skipped: tuple[int, ...] = (), next_seq: int = 1_000) -> Turns:
    return Turns(next_seq=next_seq, through=through, skipped=skipped, active=1, status="ON_SALE")


def test_served_counts_turns_given_and_buyers_who_left_before_theirs():
    assert served(turns(10)) == 10
    assert served(turns(10, (12, 15))) == 12
    # The turns passing a skipped seq trade one for the other: served stays put.
    assert served(turns(12, (15,))) == served(turns(11, (12, 15)))


def test_no_estimate_until_the_notes_span_long_enough_and_the_queue_moved():
    pace = Pace()
    assert pace.wait_seconds(5, now=0.0) is None
    pace.note(turns(0), now=0.0)
    pace.note(turns(3), now=1.0)
    assert pace.wait_seconds(5, now=MIN_SPAN_S - 0.1) is None
    assert pace.wait_seconds(5, now=MIN_SPAN_S) is not None
    stalled = Pace()
    stalled.note(turns(4), now=0.0)
    stalled.note(turns(4), now=30.0)
    assert stalled.wait_seconds(5, now=30.0) is None


def test_with_a_steady_pace_the_estimate_is_within_half_of_the_actual_wait():
    """A simulated sale: three turns a second, the feed reading the counters once a second; every
    buyer that waits reads an estimate within 50% of the time its turn actually took to come."""
    rate, buyers = 3.0, 300
    pace = Pace()
    checked = 0
    for tick in range(buyers // 3):
        now = float(tick)
        through = int(rate * now)
        pace.note(turns(through), now=now)
        for seq in range(through + 1, buyers + 1, 17):
            estimate = pace.wait_seconds(seq - through, now=now)
            if tick * 1.0 < MIN_SPAN_S:
                assert estimate is None
                continue
            actual = (seq / rate) - now  # when `through` reaches it
            if actual >= 1:
                assert abs(estimate - actual) <= 0.5 * actual, (tick, seq, estimate, actual)
                checked += 1
    assert checked > 100


def test_the_estimate_follows_a_slowdown_within_the_window():
    pace = Pace()
    for second in range(120):  # ten turns a second for two minutes
        pace.note(turns(10 * second), now=float(second))
    assert pace.wait_seconds(100, now=119.0) == 10
    for second in range(120, 120 + int(WINDOW_S) + 2):  # then one a second
        pace.note(turns(1190 + (second - 119)), now=float(second))
    now = float(120 + int(WINDOW_S) + 1)
    assert 95 <= pace.wait_seconds(100, now=now) <= 105


def test_a_read_of_older_counters_starts_the_notes_again():
    pace = Pace()
    pace.note(turns(50), now=0.0)
    pace.note(turns(60), now=5.0)
    pace.note(turns(10), now=6.0)  # a counter gone back (a stale copy): no pace from it
    assert pace.wait_seconds(5, now=7.0) is None


def test_paces_are_kept_per_event_and_bounded():
    paces = Paces()
    first = paces.of("event-0")
    assert paces.of("event-0") is first
    for n in range(1, MOST_EVENTS + 1):
        paces.of(f"event-{n}")
    assert paces.of("event-0") is not first  # the oldest was dropped and made again
