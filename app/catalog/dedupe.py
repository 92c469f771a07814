"""The event dedupe key: an organizer cannot publish the same show twice, nor block another's.

The key is `organizerId:artistId:venueId:startAtUtc:slug(title)`, held unique by an index.
Events written before the organizer was part of it hold `artistId:venueId:startAtUtc:slug`;
`migrate_keys` prefixes those with their organizer, once per database (app/db.py `migrate`).
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from app.catalog import repository as repo
from app.catalog import search

log = logging.getLogger("app.catalog")

BATCH = 500


def slug(text: str) -> str:
    """A title's slug for the dedupe key: folded words joined by '-'."""
    return "-".join(search.words(text))


def dedupe_key(*, organizer_id: str, artist_id: str, venue_id: str, start: int, title: str) -> str:
    """The key two events of one organizer may not share."""
    return f"{organizer_id}:{artist_id}:{venue_id}:{start}:{slug(title)}"


def is_current(doc: dict[str, Any]) -> bool:
    """Whether a stored event's key already names its organizer.

    An old key (`artist:venue:start:slug`) never starts with `organizer:artist:venue:start:`:
    the venue id is hex, the start digits and the slug words, so it holds three colons more
    than its artist id, and that prefix four more than the organizer's and the artist's."""
    prefix = f"{doc['organizerId']}:{doc['artistId']}:{doc['venue']['venueId']}:{doc['startAtUtc']}:"
    return doc["dedupeKey"].startswith(prefix)


async def migrate_keys(db: AsyncDatabase) -> int:
    """Prefix with its organizer every event key still on the old form; how many were rewritten."""
    rewritten = 0
    pending: list[tuple[Any, str, str]] = []
    async for doc in repo.dedupe_fields(db):
        if not is_current(doc):
            pending.append((doc["_id"], doc["dedupeKey"], f"{doc['organizerId']}:{doc['dedupeKey']}"))
        if len(pending) >= BATCH:
            rewritten += await _rekey(db, pending)
            pending = []
    return rewritten + (await _rekey(db, pending) if pending else 0)


async def _rekey(db: AsyncDatabase, changes: list[tuple[Any, str, str]]) -> int:
    rewritten, clashes = await repo.set_dedupe_keys(db, changes)
    if clashes:
        # An old-form event whose show its organizer published again under the new key (a process
        # of the earlier version ran beside a new one): it keeps its old key, which blocks nobody.
        log.warning("dedupe migration: %d events keep their old key (a newer twin holds it)", clashes)
    return rewritten
