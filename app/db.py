"""The database: one async client per event loop, and every index the product needs.

Every collection of DESIGN section 2 and each of its indexes is declared in
`INDEXES` below, so the whole data model can be read in one place, and is
created idempotently at start-up by `ensure_indexes`. Only a domain's
repository reads or writes its collections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from pymongo.monitoring import CommandListener
from pymongo.uri_parser import parse_uri

DEFAULT_DATABASE = "ticketing"


# The partial index of the orders in flight (app/orders/repository.py names it in its reads).
ORDERS_IN_FLIGHT = "orders_in_flight"


def _ix(*keys: str, **options: Any) -> IndexModel:
    return IndexModel([(k, ASCENDING) for k in keys], **options)


INDEXES: dict[str, list[IndexModel]] = {
    "venues": [_ix("city"), _ix("timezone")],
    "events": [
        _ix("status", "startAtUtc"),
        _ix("venue.city", "startAtUtc"),
        _ix("artistId", "startAtUtc"),
        _ix("dedupeKey", unique=True),
        # Search: the ranked tokens, one score at a time, a window of starts at a time (see
        # catalog/service.py `_search_tier`); with a city, the city's own.
        _ix("searchRanks", "startAtUtc", "_id", name="searchRanks_startAtUtc"),
        _ix("venue.city", "searchRanks", "startAtUtc", name="city_searchRanks_startAtUtc"),
        # Q1 with no filter: keyset pagination over (startAtUtc, _id).
        _ix("startAtUtc", "_id"),
        # The sweep's look for turns given and not taken up: queues that moved in the last minute.
        _ix("queueActivityAtUtc"),
    ],
    "eventTickets": [_ix("eventId", "type", unique=True), _ix("eventId")],
    # The instants a sale window opens or closes, for the status cron to visit only the events
    # whose windows moved (never an index on eventTickets: its stock updates rewrite every one).
    "saleWindows": [_ix("at")],
    "userTickets": [
        _ix("ticketNumber", unique=True),
        _ix("confirmationCode", unique=True),
        _ix("userId", "purchasedAtUtc"),
        _ix("eventId", "userId"),
        _ix("userId", "status"),
    ],
    "eventQueue": [
        _ix("eventId", "userId", unique=True),
        _ix("eventId", "status", "seq"),
        _ix("eventId", "expiresAtUtc"),
        _ix("expiresAtUtc"),
    ],
    "waitlist": [_ix("eventId", "userId", unique=True), _ix("eventId", "status", "joinedAtUtc"), _ix("status")],
    "checkoutSessions": [_ix("eventId"), _ix("eventId", "userId"), _ix("expiresAtUtc")],
    "orders": [
        _ix("userId", "idempotencyKey", unique=True),
        # Orders in flight only (PENDING, RESERVED: the states that sort from PENDING up), for the
        # repair's reads: it never grows with history, and an order's completion deletes its entry
        # instead of rewriting it. Keyed on eventId alone: SecantusDB answered a partial index keyed
        # on its own filter field (eventId, state) with no documents for `{state: "PENDING"}`.
        _ix("eventId", name=ORDERS_IN_FLIGHT, partialFilterExpression={"state": {"$gte": "PENDING"}}),
    ],
}


# Connections per process, unless MONGODB_URI names its own maxPoolSize. The embedded
# server spends its time on contention with many clients: the rush sold 11.6 orders/s
# with 8 connections, 9.9 with 24 and 9.8 with PyMongo's default 100 (docs/BENCHMARKS.md).
POOL_SIZE = 8


def connect(uri: str, listeners: Sequence[CommandListener] = ()) -> AsyncMongoClient:
    """A client for `uri`; create one per event loop and close it on shutdown."""
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        event_listeners=list(listeners),
        **({} if "maxpoolsize" in uri.lower() else {"maxPoolSize": POOL_SIZE}),
    )


def database_name(uri: str) -> str:
    """The database named in the URI's path, else `ticketing`."""
    return parse_uri(uri).get("database") or DEFAULT_DATABASE


class Database(AsyncDatabase):
    """PyMongo's database, whose collections (`db.events`) are made once, not on every access.

    `AsyncDatabase.__getattr__` builds a new `AsyncCollection` each time (its codec, read and
    write options resolved again): two per Q2 and a handful per purchase, ~7 us each.
    Collections are immutable handles, so the first one made for a name serves every later read.
    """

    def __getattr__(self, name: str) -> AsyncCollection:
        collection = super().__getattr__(name)
        self.__dict__[name] = collection  # found as a plain attribute from now on
        return collection


def get_database(client: AsyncMongoClient, uri: str) -> AsyncDatabase:
    """The product's database on `client`."""
    return Database(client, database_name(uri))


# Indexes an earlier version made and nothing reads any more: each costs every insert a write.
OBSOLETE_INDEXES = {"events": ["searchTokens_startAtUtc"]}


async def ensure_indexes(db: AsyncDatabase) -> None:
    """Create every collection index of the data model and drop obsolete ones; safe to run on every start."""
    for collection, models in INDEXES.items():
        await db[collection].create_indexes(models)
    for collection, names in OBSOLETE_INDEXES.items():
        existing = {ix["name"] async for ix in await db[collection].list_indexes()}
        for name in existing.intersection(names):
            await db[collection].drop_index(name)


async def ping(db: AsyncDatabase) -> None:
    """Raise unless the database answers."""
    await db.command("ping")


DUPLICATE_KEY = 11000


async def insert_each(collection: AsyncCollection, docs: list[dict[str, Any]]) -> list[bool]:
    """Insert the documents in one command; for each, whether it was written (False: a unique
    index already holds its key). Any other refusal is raised."""
    written = [True] * len(docs)
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as error:
        failures = error.details.get("writeErrors", [])
        if any(f.get("code") != DUPLICATE_KEY for f in failures):
            raise
        for failure in failures:
            written[failure["index"]] = False
    return written
