"""How a search reads the ranked index (Q5): a few windows of starts, not every match.

Each event holds its search tokens ranked (`search.ranked_tokens`): `14:live` if
"live" is a whole word of its title, `04:liv` if a title word only begins so.
The best events for a one-word query are those of the highest score, earliest
first, then those of the next score, and so on. The index (searchRanks,
startAtUtc) serves each score's events in start order.

SecantusDB reads every index entry whose start is in the range asked, then
sorts them (DESIGN section 6): one open range over a word in every tenth event
read thousands. (It also answers `$in` on the tokens, or a filter on a second
array, with a collection scan: each read names one ranked token.) So a search
reads the best score's first two days, and if they cannot fill the page, every
other score's at once; a score with none there is held by few events and is
read open-ended; a score with some is read on, best score first, in windows
sized from the density seen to hold what is still needed. A search reads about
as many entries as it returns, however many events match.

The other terms and the status are checked on what comes back, and a window is
then read whole; so the rarest term leads, as a short probe window of each
tells. What the leading term's probe read is its first window where it holds
any events: the search goes on from its end, and reads no entry twice. The next
window is sized to hold what is still needed with half again to spare. Upcoming
events (started at most ONGOING_MS ago, see catalog/service.py) come first;
past ones only when asked for, latest first.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from app.catalog import repository as repo
from app.catalog import search
from app.catalog.models import Event, EventStatus

FIRST_WINDOW_MS = 2 * 86_400_000
# How far ahead a several-word search looks to tell which of its terms is rarest: a
# common word costs what it holds in this window, so it is a fraction of the first.
PROBE_WINDOW_MS = FIRST_WINDOW_MS // 4
# A window past the first is sized to hold this many times what is still needed, at the
# density seen, and at least an eighth of the span read so far: a window that falls short
# costs one more read, one too wide costs documents.
SPARE = 1.5
# Past this width a window is read open-ended.
HORIZON_MS = 5 * 365 * 86_400_000
# Entries one search may read past its probe (about a quarter of a second of the database's
# time). Only a search whose checks reject most of what it reads comes near it: two common
# words that are rarely together, or a rare status; it then answers what the starts it read
# hold, and looks no further (docs/DECISIONS.md).
READ_BUDGET = 2_000


class Budget:
    """The entries a search may still read."""

    __slots__ = ("left",)

    def __init__(self, entries: int) -> None:
        self.left = entries


class Wanted(NamedTuple):
    """What a search asks for: its terms (the leading one most selective), a city, a status;
    and what it may still read."""

    terms: list[str]
    city: str | None
    status: EventStatus | None
    budget: Budget


# The scores whose first window tells how common a term is: in a title, whole or begun.
DENSITY_SCORES = (search.WHOLE_WORD_BONUS + search.FIELD_WEIGHTS["title"], search.FIELD_WEIGHTS["title"])


class Opening(NamedTuple):
    """What a several-word search has read before its first window: the leading term's events
    at each of `DENSITY_SCORES` (by ranked token) that start from the bound to `end`."""

    end: int
    windows: dict[str, list[Event]]


async def leading_first(db: AsyncDatabase, terms: list[str], city: str | None, bound: int) -> tuple[list[str], Opening | None]:
    """The terms with the rarest first: the others are checked on what its windows return, so the
    rarer it is, the fewer entries a search reads. How rare, from a probe window of each; what the
    leading term's probe read is the search's first window (None for one term: nothing read)."""
    if len(terms) == 1:
        return terms, None
    side = _Side(bound, latest_first=False)
    end = side.step(bound, PROBE_WINDOW_MS)
    ranks = {term: [search.rank_token(score, term) for score in DENSITY_SCORES] for term in terms}
    reads = [repo.ranked_events(db, repo.ranked_query(rank, city, side.between(bound, end)), latest_first=False, limit=0)
             for term in terms for rank in ranks[term]]
    found = dict(zip([rank for term in terms for rank in ranks[term]], await asyncio.gather(*reads)))
    ordered = sorted(terms, key=lambda t: sum(len(found[rank]) for rank in ranks[t]))  # stable: the longest first among equals
    return ordered, Opening(end, {rank: found[rank] for rank in ranks[ordered[0]]})


async def best(db: AsyncDatabase, wanted: Wanted, bound: int, limit: int, *, latest_first: bool,
               opening: Opening | None = None) -> list[Event]:
    """The best `limit` events on one side of `bound` (after it; or before it, latest first); an
    `opening` (after it only) stands for the first windows it holds and sets where they end."""
    side = _Side(bound, latest_first)
    ranks = [search.rank_token(score, wanted.terms[0]) for score in search.TERM_SCORES]
    first_end = side.step(bound, FIRST_WINDOW_MS)

    async def first(rank: str) -> tuple[list[Event], int, int]:
        """A score's first window: what it holds that passes, how many it holds, where it ends."""
        opened = opening.windows.get(rank) if opening else None
        if opened:
            return _checked(opened, wanted, limit), len(opened), opening.end
        # Nothing in the opening (or none): it is no sign that few events hold the rank, so read
        # on to the end of an ordinary first window.
        start = opening.end if opened is not None else bound
        return (*await _read(db, wanted, rank, side.between(start, first_end), side, limit), first_end)

    # The best score first: a common word fills a page from it alone, and each read costs the
    # database even when it finds nothing.
    firsts = [await first(ranks[0])]
    picked: list[Event] = []
    for n, rank in enumerate(ranks):
        need = limit - len(picked)
        if need <= 0 or wanted.budget.left <= 0:
            break
        if n == len(firsts):  # it did not: every other score's first window at once, and how dense
            firsts += await asyncio.gather(*(first(r) for r in ranks[1:]))
        tier, held, end = firsts[n]
        tier = tier[:need]
        if not held:  # no event near the bound holds it: few do, read them at once
            tier = (await _read(db, wanted, rank, side.beyond(end), side, need))[0]
        elif len(tier) < need:
            tier += await _more(db, wanted, rank, side, end, len(tier), held, need)
        if len(wanted.terms) > 1:
            tier.sort(key=lambda e: -search.relevance(wanted.terms, _fields(e)))  # stable: start order within
        picked += tier
    return picked


class _Side(NamedTuple):
    bound: int
    latest_first: bool

    def step(self, edge: int, span: int) -> int:
        return edge - span if self.latest_first else edge + span

    def between(self, edge: int, far: int) -> dict[str, int]:
        return {"$gte": far, "$lt": edge} if self.latest_first else {"$gte": edge, "$lt": far}

    def beyond(self, edge: int) -> dict[str, int]:
        return {"$lt": edge} if self.latest_first else {"$gte": edge}


async def _more(db: AsyncDatabase, wanted: Wanted, rank: str, side: _Side, edge: int, seen: int, read: int,
                need: int) -> list[Event]:
    """Events of one score past `edge`, `seen` of them (of `read` entries) having come before it:
    windows sized to hold what is still needed at the density seen, widened until they do, and
    never wider than the search's budget holds at the density read; open-ended past the horizon."""
    found: list[Event] = []
    width = abs(edge - side.bound)
    while seen + len(found) < need and wanted.budget.left > 0:
        have = seen + len(found)
        # Eight times as wide while none passed the checks (the other words, the status).
        span = width * 8 if have == 0 else max(width // 8, int(width * (need - have) / have * SPARE))
        span = min(span, max(1, int(width * wanted.budget.left / max(read, 1))))
        if span >= HORIZON_MS:
            return found + (await _read(db, wanted, rank, side.beyond(edge), side, need - have))[0]
        far = side.step(edge, span)
        got, counted = await _read(db, wanted, rank, side.between(edge, far), side, need - have)
        found += got
        read += counted
        edge, width = far, abs(far - side.bound)
    return found


async def _read(db: AsyncDatabase, wanted: Wanted, rank: str, starts: dict[str, int], side: _Side,
                limit: int) -> tuple[list[Event], int]:
    """The events holding `rank` within `starts` that pass the search's checks, at most `limit`;
    and how many were read. A search whose checks may reject reads its windows whole."""
    checked = len(wanted.terms) > 1 or wanted.status is not None
    query = repo.ranked_query(rank, wanted.city, starts)
    got = await repo.ranked_events(db, query, latest_first=side.latest_first, limit=0 if checked else limit)
    wanted.budget.left -= len(got)
    return _checked(got, wanted, limit), len(got)


def _checked(events: list[Event], wanted: Wanted, limit: int) -> list[Event]:
    """The first `limit` of `events` that pass the search's checks."""
    return [e for e in events if _passes(e, wanted)][:limit]


def _passes(event: Event, wanted: Wanted) -> bool:
    """Holds every term after the leading one, and has the status asked for, if any."""
    if wanted.status is not None and event.status is not wanted.status:
        return False
    return search.holds(wanted.terms[1:], _fields(event))


def _fields(event: Event) -> dict[str, str | None]:
    return {"title": event.title, "artist": event.artist_name, "venue": event.venue.name, "city": event.venue.city}
