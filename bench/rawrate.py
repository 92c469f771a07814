"""The server's raw guarded-update rate: the yardstick the rush's orders/s is divided by.

A tight loop of the write every guarantee in the product rests on (a
`find_one_and_update` with a guard in the filter and an `$inc`), from a few
concurrent clients, on the same fresh server just before the rush, in a
database of its own. Absolute rates drift on shared machines; the ratio of
two rates taken minutes apart on one server drifts much less.
"""

from __future__ import annotations

import asyncio
import time

from pymongo import AsyncMongoClient

DATABASE = "bench_raw"
BIG = 1 << 60


async def guarded_update_rate(uri: str, *, clients: int = 4, updates: int = 1200, max_seconds: float = 20.0) -> dict:
    """Updates/s over `updates` guarded updates split across `clients` clients (each its own document)."""
    connections = [AsyncMongoClient(uri, directConnection=True) for _ in range(clients)]
    try:
        coll = connections[0][DATABASE].counters
        await coll.drop()
        await coll.insert_many([{"_id": n, "n": 0} for n in range(clients)])
        for c in connections:  # connect and warm each client before the clock starts
            await c.admin.command("ping")
        each = updates // clients
        stop_at = time.perf_counter() + max_seconds

        async def loop(client: AsyncMongoClient, doc_id: int) -> int:
            counters, done = client[DATABASE].counters, 0
            while done < each and time.perf_counter() < stop_at:
                await counters.find_one_and_update({"_id": doc_id, "n": {"$lt": BIG}}, {"$inc": {"n": 1}})
                done += 1
            return done

        started = time.perf_counter()
        done = sum(await asyncio.gather(*(loop(c, n) for n, c in enumerate(connections))))
        seconds = time.perf_counter() - started
        return {"clients": clients, "updates": done, "seconds": round(seconds, 3), "per_second": round(done / seconds, 1)}
    finally:
        for c in connections:
            await c.close()
