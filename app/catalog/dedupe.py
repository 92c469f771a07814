"""The event dedupe key: an organizer cannot publish the same show twice, nor block another's.

The key is `organizerId:artistId:venueId:startAtUtc:slug(title)`, held unique by an index.
Events written before the organizer was part of it hold `artistId:venueId:startAtUtc:slug`
(the legacy key). They are not rewritten: at 100,000 events that took SecantusDB over twenty
minutes (every index entry of each event is written again), a start-up no operator should
wait for. A legacy key blocks nobody, since no new key has its form; a new event is refused
if its organizer holds the show under the legacy key (one read by the unique index).
"""

from __future__ import annotations

from app.catalog import search


def slug(text: str) -> str:
    """A title's slug for the dedupe key: folded words joined by '-'."""
    return "-".join(search.words(text))


def dedupe_key(*, organizer_id: str, artist_id: str, venue_id: str, start: int, title: str) -> str:
    """The key two events of one organizer may not share."""
    return f"{organizer_id}:{legacy_key(artist_id=artist_id, venue_id=venue_id, start=start, title=title)}"


def legacy_key(*, artist_id: str, venue_id: str, start: int, title: str) -> str:
    """The key of the same show as events stored before issue 10 hold it (no organizer)."""
    return f"{artist_id}:{venue_id}:{start}:{slug(title)}"
