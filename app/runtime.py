"""What the sale-day services need at hand: the database, the settings, the broker, the scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings
from app.pubsub import Broker
from app.batches import Batches
from app.limits import Limiter, LocalLimiter
from app.queue.pace import Paces

# Purchases finished in one group at most: the group's writes match by `$in` on ids, whose
# cost grows with the square of the list on SecantusDB (at 50, negligible; at 1,500, seconds).
# A CHECKOUT_LIMIT of 50 admits a rush's buyers in twos of groups, not threes.
ENDINGS_PER_GROUP = 50


class Scheduler(Protocol):
    """Deferred work, run by the workers at (or just after) a given instant."""

    async def expire_at(self, *, event_id: str, at_ms: int) -> None:
        """Expire the event's entries (and sessions) due by `at_ms`, at that instant or soon after."""

    async def refresh_status_at(self, *, event_id: str, at_ms: int) -> None:
        """Recompute the event's stored sale status at `at_ms` (a sale window opens or closes)."""

    async def workers_alive(self) -> bool:
        """Is some worker running these jobs right now (its heartbeat is fresh)?"""

    async def close(self) -> None:
        """Let go of the connection to the workers."""


class NoScheduler:
    """No workers: the API's own sweep enforces expiry, and status is derived on read."""

    async def expire_at(self, *, event_id: str, at_ms: int) -> None:
        return None

    async def refresh_status_at(self, *, event_id: str, at_ms: int) -> None:
        return None

    async def workers_alive(self) -> bool:
        return False

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Runtime:
    db: AsyncDatabase
    settings: Settings
    broker: Broker
    scheduler: Scheduler = field(default_factory=NoScheduler)
    limiter: Limiter = field(default_factory=LocalLimiter)  # the rate limits' buckets
    # Calls waiting to go together in one command with others of their event (app/batches.py):
    # joins, reads of buyers' entries and starts of checkout (app/queue/groups.py), and
    # purchases' orders, stock takes and endings (app/orders/service.py, app/orders/endings.py),
    # and the buyers' tallies their caps are counted in (app/orders/tallies.py).
    joins: Batches = field(default_factory=Batches)
    entry_reads: Batches = field(default_factory=Batches)
    checkout_starts: Batches = field(default_factory=Batches)
    order_inserts: Batches = field(default_factory=Batches)
    stock_takes: Batches = field(default_factory=Batches)
    hold_purchases: Batches = field(default_factory=Batches)
    tally_takes: Batches = field(default_factory=Batches)
    tally_returns: Batches = field(default_factory=Batches)
    # Closings of sold-out queues, run after the purchase that sold out is answered.
    closings: Batches = field(default_factory=Batches)
    purchase_endings: Batches = field(default_factory=lambda: Batches(most=ENDINGS_PER_GROUP))
    # How fast each event's queue has moved lately, as this process read it: estimated waits.
    paces: Paces = field(default_factory=Paces)


def offline_runtime(db: AsyncDatabase, settings: Settings | None = None) -> Runtime:
    """A runtime for work outside a server (seeding, scripts, tests): no workers, and news
    goes only to this process's own subscribers."""
    from app.pubsub import InProcessBroker

    return Runtime(db=db, settings=settings or Settings(_env_file=None), broker=InProcessBroker())
