"""Helpers for the workers suite: in-process arq workers, API and worker OS processes,
bounded polling, database checks of the DESIGN invariants, and crashed-purchase leftovers.

Everything here talks to real servers: the SecantusDB server and redis-server the
test session starts on free ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from arq.worker import Worker
from bson import ObjectId
from prometheus_client import REGISTRY

from app.config import Settings
from app.embedded import _die_with_parent, free_port
from app.timeutil import now_ms
from bench.stack import Child as Proc  # one `python -m app ...` process, its log and port
from tests.api_client import document
from tests.conftest import JWT_SECRET
from tests.factories import ACTIVE_SESSIONS
from tests.factories import buy, buy_input, checkout, join, stuck_order  # noqa: F401 - re-exported for the workers' tests
from workers.settings import worker_settings

ROOT = Path(__file__).resolve().parents[2]
# Settings names of DESIGN section 3 (and the worker's METRICS_PORT): none may leak in from
# the caller's environment into the processes these tests start.
SETTINGS_ENV = (
    "QUEUE_EXPIRY_SECONDS", "QUEUE_COOLDOWN_SECONDS", "CHECKOUT_EXPIRY_SECONDS", "CHECKOUT_LIMIT",
    "MAX_TICKETS_PER_PURCHASE", "PORT", "HOST", "MONGODB_URI", "REDIS_URL", "DATA_DIR", "CORS_ORIGINS",
    "JWT_SECRET", "METRICS_PORT",
)


def make_settings(mongo_uri: str, **overrides: Any) -> Settings:
    return Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, _env_file=None, **overrides)


# --- waiting, bounded ------------------------------------------------------------------


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds with its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last seen: {last!r})")
        await asyncio.sleep(interval)


def wait_sync(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last seen: {last!r})")
        time.sleep(interval)


# --- metrics of this process -----------------------------------------------------------


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def job_runs(job: str, outcome: str) -> float:
    return sample("ticketing_job_runs_total", job=job, outcome=outcome)


# --- arq workers in this process ---------------------------------------------------------


def worker_kwargs(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The project's worker settings, without signal handlers (pytest owns the signals here)."""
    return worker_settings(settings) | {"handle_signals": False} | overrides


async def _stop_worker(worker: Worker, task: asyncio.Task) -> None:
    if worker.main_task is not None and not worker.main_task.done():
        worker.main_task.cancel()
    with suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    # Jobs already started run to their end (as on a graceful shutdown), then the worker closes.
    await asyncio.wait_for(asyncio.gather(*worker.tasks.values(), return_exceptions=True), 30)
    worker.tasks.clear()
    await asyncio.wait_for(worker.close(), 30)


@asynccontextmanager
async def running_worker(settings: Settings, **overrides: Any) -> AsyncIterator[Worker]:
    """An arq Worker with the project's settings, running in this event loop until the block ends."""
    worker = Worker(**worker_kwargs(settings, **overrides))
    task = asyncio.create_task(worker.async_run())
    try:
        async def started() -> bool:
            if task.done():
                task.result()  # startup failed: raise its error
            return "rt" in worker.ctx

        await eventually(started, 20, "the worker's startup")
        yield worker
    finally:
        await _stop_worker(worker, task)


@asynccontextmanager
async def running_workers(*all_settings: Settings, **overrides: Any) -> AsyncIterator[list[Worker]]:
    """One running worker per settings object, all on this event loop."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_worker(s, **overrides)) for s in all_settings]


async def drained(workers: list[Worker], *, after_ms: int = 0, timeout: float = 30) -> None:
    """Wait until `after_ms` has passed and then until no job is due in the queue and none is running.

    (A burst worker would not do: the jobs schedule follow-up jobs, such as the expiry
    of the buyer an expiry admits, minutes ahead.)
    """
    async def idle() -> bool:
        if now_ms() < after_ms:
            return False
        # (+50 ms: a job enqueued "now" may carry a score a millisecond ahead of this clock reading)
        due = await workers[0].pool.zcount(QUEUE, "-inf", now_ms() + 50)
        return due == 0 and not any(not t.done() for w in workers for t in w.tasks.values())

    await eventually(idle, timeout, "the workers to run every due job")


QUEUE = "arq:queue"


def dormant_crons(settings: Settings) -> list:
    """The project's cron jobs (so their functions can be enqueued by name), with no start-up run
    and a schedule that does not come up during a test (midnight of January 1st)."""
    return [
        replace(cj, run_at_startup=False, month=1, day=1, hour=0, minute=0, second=0, next_run=None)
        for cj in worker_settings(settings)["cron_jobs"]
    ]


def retimed_crons(crons: list, second: int) -> list:
    """The same cron jobs, unchanged but for their schedule: every minute at `second`."""
    return [replace(cj, second=second, minute=None, hour=None, day=None, month=None, run_at_startup=False,
                    next_run=None) for cj in crons]


# --- the database ------------------------------------------------------------------------


async def entry_doc(db, event_id: str, user_id: str) -> dict:
    doc = await db.eventQueue.find_one({"eventId": ObjectId(event_id), "userId": user_id})
    assert doc is not None, (event_id, user_id)
    return doc


async def event_doc(db, event_id: str) -> dict:
    doc = await db.events.find_one({"_id": ObjectId(event_id)})
    assert doc is not None, event_id
    return doc


async def ticket_doc(db, ticket_type_id: str) -> dict:
    doc = await db.eventTickets.find_one({"_id": ObjectId(ticket_type_id)})
    assert doc is not None, ticket_type_id
    return doc


async def statuses(db, event_id: str) -> dict[str, str]:
    return {d["userId"]: d["status"] async for d in db.eventQueue.find({"eventId": ObjectId(event_id)})}


async def snapshot(db, *names: str) -> dict[str, list[dict]]:
    names = names or ("events", "eventTickets", "eventQueue", "checkoutSessions", "orders", "userTickets")
    return {n: [d async for d in db[n].find({}).sort("_id", 1)] for n in names}


async def invariant_violations(db, event_id: str, checkout_limit: int) -> list[str]:
    """DESIGN invariants 1, 2 and 7 as the documents show them once work has settled."""
    problems: list[str] = []
    eid = ObjectId(event_id)
    event = await event_doc(db, event_id)
    tickets = [d async for d in db.userTickets.find({"eventId": eid})]
    live_by_type = Counter(str(t["eventTicketId"]) for t in tickets if t["status"] != "CANCELLED")
    async for t in db.eventTickets.find({"eventId": eid}):
        sold, total, issued = t["quantitySold"], t["quantityTotal"], live_by_type[str(t["_id"])]
        if not 0 <= sold <= total:
            problems.append(f"{t['type']}: quantitySold {sold} outside 0..{total}")
        if sold != issued:
            problems.append(f"{t['type']}: quantitySold {sold} but {issued} issued, non-cancelled tickets")
    admitted = await db.eventQueue.count_documents({"eventId": eid, "status": "ADMITTED"})
    if event["activeCheckouts"] != admitted:
        problems.append(f"activeCheckouts {event['activeCheckouts']} but {admitted} ADMITTED entries")
    if admitted > checkout_limit:
        problems.append(f"{admitted} ADMITTED entries, above CHECKOUT_LIMIT {checkout_limit}")
    active_sessions = await db.eventQueue.count_documents({"eventId": eid, **ACTIVE_SESSIONS})
    if active_sessions > admitted:
        problems.append(f"{active_sessions} ACTIVE sessions but only {admitted} ADMITTED entries")
    by_order: dict[Any, list[dict]] = {}
    for t in tickets:
        by_order.setdefault(t["orderId"], []).append(t)
    orders = [o async for o in db.orders.find({"eventId": eid})]
    known = {o["_id"] for o in orders}
    for o in orders:
        mine = by_order.get(o["_id"], [])
        if o["state"] in ("PENDING", "RESERVED"):
            problems.append(f"order {o['_id']} left {o['state']}")
        elif o["state"] == "COMPLETED":
            wanted = Counter({str(i["ticketTypeId"]): i["quantity"] for i in o["items"]})
            got = Counter(str(t["eventTicketId"]) for t in mine)
            planned = sorted(str(p["id"]) for p in o["tickets"])
            if got != wanted or sorted(str(t["_id"]) for t in mine) != planned:
                problems.append(f"COMPLETED order {o['_id']}: items {dict(wanted)}, tickets {dict(got)}")
            if any(t["userId"] != o["userId"] for t in mine):
                problems.append(f"COMPLETED order {o['_id']} has tickets of another user")
        elif mine:
            problems.append(f"{o['state']} order {o['_id']} has {len(mine)} tickets")
    strays = [t["_id"] for t in tickets if t["orderId"] not in known]
    if strays:
        problems.append(f"tickets of no order: {strays}")
    for key in ("ticketNumber", "confirmationCode"):
        dupes = [v for v, n in Counter(t[key] for t in tickets).items() if n > 1]
        if dupes:
            problems.append(f"duplicate {key}: {dupes}")
    return problems


# --- buyers through an ApiClient-like object ------------------------------------------------


# --- the API over HTTP to another process ---------------------------------------------------


class RemoteApi:
    """The same helpers as tests.api_client.ApiClient, for an API in another OS process."""

    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http, self.port = http, port
        self.base = f"http://127.0.0.1:{port}"

    async def post(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(
            f"{self.base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            text = await response.text()
            assert response.status == 200, f"HTTP {response.status}: {text[:500]}"
        return json.loads(text)

    async def op(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        return await self.post(document(name), variables, token)

    async def data(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        body = await self.op(name, variables, token)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def mutate(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        (payload,) = (await self.data(name, variables, token)).values()
        return payload

    async def ok(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        payload = await self.mutate(name, variables, token)
        assert payload["errors"] == [], payload["errors"]
        return payload

    async def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.get(f"{self.base}{path}", headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as response:
            return response.status, await response.text()

    def ws_connect(self, path: str, **kwargs: Any):
        """For tests.sale.test_subscriptions.subscribe: a websocket to this process."""
        return self.http.ws_connect(f"{self.base}{path}", **kwargs)


# --- API and worker OS processes -----------------------------------------------------------


def _env(workdir: Path, name: str, **settings: Any) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV}
    return {
        **base, "PYTHONUNBUFFERED": "1", "JWT_SECRET": JWT_SECRET, "DATA_DIR": str(workdir / f"{name}-data"),
        **{k.upper(): str(v) for k, v in settings.items()},
    }


def spawn(workdir: Path, name: str, command: str, port: int | None = None, **settings: Any) -> Proc:
    """`python -m app <command>` with the given settings as environment variables."""
    env = _env(workdir, name, **settings)
    if port is not None:
        env["PORT"] = str(port)
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,  # noqa: PLW1509 - as app.embedded does
        )
    return Proc(name, proc, log, port)


def readyz(port: int) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except (OSError, urllib.error.URLError, ValueError):
        return 0, None


def start_api(workdir: Path, name: str, **settings: Any) -> Proc:
    port = free_port()
    return spawn(workdir, name, "serve", port=port, **settings)


def wait_ready(proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while readyz(proc.port)[0] != 200:
        assert proc.proc.poll() is None, f"{proc.name} exited {proc.proc.returncode}:\n{proc.tail()}"
        assert time.monotonic() < deadline, f"{proc.name} not ready within {timeout}s:\n{proc.tail()}"
        time.sleep(0.1)


def stop_all(procs: list[Proc]) -> None:
    """SIGTERM each still running, then SIGKILL whatever has not exited within 15 s."""
    for p in procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.proc.wait(15)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait(10)


def wait_worker_ready(proc: Proc, timeout: float = 60) -> None:
    """The worker logs "worker ready" once its startup (database, broker) is done."""
    wait_sync(
        lambda: proc.proc.poll() is not None or "worker ready" in proc.tail(100_000), timeout,
        f"{proc.name} startup",
    )
    assert proc.proc.poll() is None, f"{proc.name} exited {proc.proc.returncode}:\n{proc.tail()}"
