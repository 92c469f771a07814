"""`python -m app seed-demo --events N` (`make seed-demo N=...`): a catalog of N events for
trying search and listings at scale, created through the catalog's own services.

Words follow a realistic, skewed distribution: a few words ("live", "tour", "night")
are in about one event in ten, most are rare, as in a real catalog. Venues are spread
over cities; starts over the next two years (the catalog takes no event in the past).
The same N and seed give the same catalog. Without MONGODB_URI it loads the embedded database of `make run` (stop
`make run` first: the data folder is its alone).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from app import db as db_module
from app.auth import Viewer
from app.catalog import service as catalog
from app.catalog.inputs import EventDraft, VenueDraft
from app.catalog.models import Venue
from app.config import Settings
from app.embedded import start_mongo
from app.runtime import Runtime, offline_runtime

log = logging.getLogger("app.demo")

ORGANIZER = Viewer(user_id="demo-organizer", roles=frozenset({"organizer"}))
# Events created at once: the database's work, not round trips, bounds the load.
AT_ONCE = 32

# In about one title in ten each: the common words a search must still answer fast.
COMMON = ["live", "tour", "night", "festival", "concert", "orchestra", "acoustic", "world"]
CITIES = [
    ("London", "GB", "Europe/London"), ("Manchester", "GB", "Europe/London"), ("Paris", "FR", "Europe/Paris"),
    ("Berlin", "DE", "Europe/Berlin"), ("Madrid", "ES", "Europe/Madrid"), ("Rome", "IT", "Europe/Rome"),
    ("Amsterdam", "NL", "Europe/Amsterdam"), ("Dublin", "IE", "Europe/Dublin"), ("Lisbon", "PT", "Europe/Lisbon"),
    ("New York", "US", "America/New_York"), ("Chicago", "US", "America/Chicago"), ("Austin", "US", "America/Chicago"),
    ("Los Angeles", "US", "America/Los_Angeles"), ("Toronto", "CA", "America/Toronto"),
    ("Mexico City", "MX", "America/Mexico_City"), ("São Paulo", "BR", "America/Sao_Paulo"),
    ("Tokyo", "JP", "Asia/Tokyo"), ("Seoul", "KR", "Asia/Seoul"), ("Sydney", "AU", "Australia/Sydney"),
    ("Melbourne", "AU", "Australia/Melbourne"),
]
VENUE_KINDS = ["Arena", "Hall", "Stadium", "Theatre", "Club", "Park", "Academy", "Forum"]
SYLLABLES = ["ka", "lo", "mi", "ra", "ven", "tor", "sel", "ba", "nu", "qui", "del", "zor", "an", "pe", "ri", "cho"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


class Catalogue:
    """The demo's words, artists and the shape of each event, drawn from one seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        # Zipf-like: the k-th word of the vocabulary is drawn with weight 1/k.
        self.vocabulary = [_word(self.rng) for _ in range(5_000)]
        self.weights = [1 / (k + 1) for k in range(len(self.vocabulary))]
        self.artists = [(f"demo-artist-{n}", f"{_word(self.rng).title()} {_word(self.rng).title()}") for n in range(3_000)]

    def title(self) -> str:
        words = self.rng.choices(self.vocabulary, self.weights, k=self.rng.randint(1, 3))
        if self.rng.random() < 0.6:
            words.insert(self.rng.randrange(len(words) + 1), self.rng.choice(COMMON))
        return " ".join(w.title() for w in words)

    def event(self, venue: Venue, now: datetime) -> EventDraft:
        artist_id, artist_name = self.rng.choice(self.artists)
        starts = now + timedelta(minutes=self.rng.randint(60, 2 * 365 * 24 * 60))
        return EventDraft(title=self.title(), artist_id=artist_id, artist_name=artist_name, venue_id=venue.id,
                          starts_at=starts, ends_at=starts + timedelta(hours=3))


async def seed_demo(rt: Runtime, *, events: int, seed: int = 7) -> int:
    """Create `events` events (and their venues) through the catalog services; how many were made."""
    shape = Catalogue(seed)
    venues = []
    for city, country, zone in CITIES:
        for kind in VENUE_KINDS:
            draft = VenueDraft(name=f"{_word(shape.rng).title()} {kind}", address=f"{shape.rng.randint(1, 300)} High Street",
                               city=city, country=country, timezone=zone, capacity=shape.rng.randint(500, 80_000))
            venues.append(await catalog.create_venue(rt, actor=ORGANIZER, draft=draft))
    now, made, started = datetime.now(UTC), 0, time.monotonic()
    while made < events:
        drafts = [shape.event(shape.rng.choice(venues), now) for _ in range(min(AT_ONCE, events - made))]
        results = await asyncio.gather(*(catalog.create_event(rt, actor=ORGANIZER, draft=d) for d in drafts),
                                       return_exceptions=True)
        made += sum(1 for r in results if not isinstance(r, BaseException))
        if made // 5_000 != (made - len(drafts)) // 5_000:
            log.info("seed-demo: %d events (%.0f/s)", made, made / (time.monotonic() - started))
    return made


def run_seed_demo(settings: Settings, *, events: int, seed: int) -> int:
    """The CLI's `seed-demo`: into MONGODB_URI, else into the embedded database of `make run`."""
    with ExitStack() as children:
        uri = settings.mongodb_uri
        if not uri:
            mongo = start_mongo(settings.data_dir / "mongo")
            children.callback(mongo.stop)
            uri = mongo.uri()

        async def load() -> int:
            client = db_module.connect(uri)
            try:
                database = db_module.get_database(client, uri)
                await db_module.ensure_indexes(database)
                return await seed_demo(offline_runtime(database, settings), events=events, seed=seed)
            finally:
                await client.close()

        started = time.monotonic()
        made = asyncio.run(load())
        log.info("seed-demo: %d events in %.0f s", made, time.monotonic() - started)
    return 0 if made == events else 1
