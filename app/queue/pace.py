"""How fast an event's queue moves, as this process sees it: a waiting buyer's estimated wait.

A queue moves forward by turns given and by buyers ahead who leave. Both raise
one number of the event's turn counters, the seqs served
(`admittedThrough` plus the skipped seqs above it: the two trade places as the
turns pass a skipped seq, so the sum only grows). Every read of the counters
in this process (the positions feed's, once a second at most while anyone
watches; a query's) is noted with its time. The pace is the seqs served since
the oldest note of the last minute, over the time since then; a buyer at place
p waits about p over the pace. With no note a minute old, or nothing served
since, there is no pace to go on, and the estimate is null.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.catalog.turns import Turns

# How far back the pace looks: long enough to smooth the ticks of groups of admissions,
# short enough to follow a sale that speeds up or stalls.
WINDOW_S = 60.0
# An estimate needs the notes to span at least this long, or one group of admissions
# would read as a torrent.
MIN_SPAN_S = 2.0
# Events a process keeps paces for: the latest noted win (a sale-day process follows few).
MOST_EVENTS = 1_000


def served(turns: Turns) -> int:
    """The seqs the queue has moved past: turns given, and buyers who left before theirs."""
    return turns.through + len(turns.skipped)


class Pace:
    """The notes of one event's served count, the last minute's and the one before them."""

    __slots__ = ("_notes",)

    def __init__(self) -> None:
        self._notes: deque[tuple[float, int]] = deque()

    def note(self, turns: Turns, now: float | None = None) -> None:
        """Remember how far the queue had moved at `now` (monotonic seconds)."""
        now = time.monotonic() if now is None else now
        count = served(turns)
        if self._notes and count < self._notes[-1][1]:
            self._notes.clear()  # read from an older copy of the counters: start again
        if not self._notes or count != self._notes[-1][1]:
            self._notes.append((now, count))
        # Keep one note older than the window: the pace is measured from it.
        while len(self._notes) > 2 and self._notes[1][0] <= now - WINDOW_S:
            self._notes.popleft()

    def per_second(self, now: float | None = None) -> float | None:
        """Seqs served per second lately; None if the notes span too little or nothing moved."""
        if len(self._notes) < 2:
            return None
        now = time.monotonic() if now is None else now
        (since, first), (_, last) = self._notes[0], self._notes[-1]
        span = now - since
        if span < MIN_SPAN_S or last <= first:
            return None
        return (last - first) / span

    def wait_seconds(self, place: int, now: float | None = None) -> int | None:
        """About how long a buyer at `place` (1-based) waits for their turn; None with no pace."""
        rate = self.per_second(now)
        return None if rate is None else round(place / rate)


class Paces:
    """This process's paces, by event."""

    def __init__(self) -> None:
        self._paces: dict[str, Pace] = {}

    def of(self, event_id: str) -> Pace:
        """The event's pace, made on first use (the oldest made is dropped past MOST_EVENTS)."""
        pace = self._paces.get(event_id)
        if pace is None:
            if len(self._paces) >= MOST_EVENTS:
                del self._paces[next(iter(self._paces))]
            pace = self._paces[event_id] = Pace()
        return pace
