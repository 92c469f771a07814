"""The background sweep: expire entries and sessions whose time has passed, freeing their slots.

Expiry is also enforced whenever an entry is read for a decision; this loop
makes it happen for buyers who never come back. Every API process runs it,
but while a worker's heartbeat is fresh it stands aside: the workers'
deferred and cron jobs do the same work. So a dead worker delays nobody's
expiry or admission by more than the heartbeat's life and one interval.
One part never stands aside: every second, each API process takes up turns
that a process (an API process like itself) gave and died before admitting.
Running several at once is safe (every transition is guarded).
"""

from __future__ import annotations

import asyncio
import logging

from app.queue import service as queue
from app.runtime import Runtime
from app.waitlist import service as waitlist

log = logging.getLogger("app.queue.sweep")

SWEEP_INTERVAL_SECONDS = 0.5


# Every this many sweeps, also admit wherever buyers wait (after an admitter crashed).
ADMIT_EVERY = 10
# Every this many, take up turns given by a process that died before admitting (about a second).
STRANDED_EVERY = 2


async def sweep_forever(rt: Runtime, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
    """Expire what is due every `interval` seconds, and admit every ADMIT_EVERY rounds, while no worker does."""
    rounds = 0
    while True:
        try:
            rounds += 1
            if rounds % STRANDED_EVERY == 0:
                await queue.take_up_stranded_turns(rt)
            if await _workers_alive(rt):
                await asyncio.sleep(interval)
                continue
            await queue.sweep(rt, admit=rounds % ADMIT_EVERY == 0)
            await waitlist.offer_where_stock_returned(rt)  # what expired offers and holds gave back
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - an outage must not end the loop
            log.exception("sweep failed; retrying")
        await asyncio.sleep(interval)


async def _workers_alive(rt: Runtime) -> bool:
    try:
        return await rt.scheduler.workers_alive()
    except Exception:  # noqa: BLE001 - Redis unreachable: nobody can vouch for the workers
        return False
