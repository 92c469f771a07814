"""Sale day under real concurrency: DESIGN section 3, invariants 1-6.

Nothing is simulated. Per scenario: a SecantusDB server (a real MongoDB
wire-protocol server), two API processes (`python -m app serve`,
configured by the environment like production) on the same database, and
two buyer processes (tests/sale/buyers.py), each running 100+ concurrent
asyncio buyers over HTTP against both API processes. Every API process runs
its own background expiry sweep, as deployed.

Scenario 1, CHECKOUT_LIMIT above the buyer count: everybody is admitted at
once and 240 buyers race for 110 tickets of two types.
Scenario 2, CHECKOUT_LIMIT 5: 200 buyers pass through five slots; a sampler
reads the queue, the slot counter and the sessions every ~20 ms while they do.

Afterwards the database itself is checked: no type oversold, quantitySold
equal to the tickets issued, every ticket number and confirmation code
unique, every order all-or-nothing, nothing left in flight, slots all given
back, one queue entry per buyer, seqs unique, admission in seq order; and
every buyer's story: an order, or only SOLD_OUT / INSUFFICIENT_INVENTORY.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bson import ObjectId
from pymongo import MongoClient

from app.auth import issue_token
from app.embedded import EmbeddedMongo, _die_with_parent, free_port, start_mongo
from bench.seed import mutate  # one HTTP mutation, failing on any error
from tests.factories import ACTIVE_SESSIONS, event_input, ticket_type_input, venue_input
from tests.workers.support import spawn, wait_worker_ready

pytestmark = pytest.mark.slow  # several API and buyer processes: `make test-fast` leaves it out

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "concurrency-test-secret-long-enough-for-hs256"
LOSING_CODES = {"SOLD_OUT", "INSUFFICIENT_INVENTORY"}
BUYER_PROCESSES = 2
# A buyer's "admitted at" is stamped just before the admitting write runs; two API
# processes admitting at the same moment may stamp in the other order than they
# write. Inversions up to this much are that skew, not an admission out of order.
STAMP_SKEW_MS = 250
# Settings names of DESIGN section 3: none may leak in from the caller's environment.
SETTINGS_ENV = (
    "QUEUE_EXPIRY_SECONDS", "QUEUE_COOLDOWN_SECONDS", "CHECKOUT_EXPIRY_SECONDS", "CHECKOUT_LIMIT",
    "MAX_TICKETS_PER_PURCHASE", "PORT", "HOST", "MONGODB_URI", "REDIS_URL", "DATA_DIR", "CORS_ORIGINS", "JWT_SECRET",
)


# --- the servers ----------------------------------------------------------------------


@pytest.fixture
def mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    """A fresh SecantusDB per scenario (it starts in well under a second): the write rate of
    a used one is lower, and writes a failed scenario left queued (stuck in conflict
    retries) must not slow the next one into a failure of its own."""
    server = start_mongo(tmp_path_factory.mktemp("concurrency-db"), durable=False)
    try:
        yield server
    finally:
        server.kill()


@dataclass
class Api:
    ports: list[int]
    procs: list[subprocess.Popen]
    logs: list[Path]

    def log_problems(self) -> list[str]:
        """Lines of the API logs that speak of a server fault."""
        found = []
        for log in self.logs:
            text = log.read_text(errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                if "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
                    found.append(f"{log.name}:{number}: {line}")
        return found


def _readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def api_processes(
    mongo_uri: str, checkout_limit: int, workdir: Path, count: int = 2, redis_url: str | None = None
) -> Iterator[Api]:
    """`count` API processes on one database, ready; always stopped (and checked stopped) after.
    With `redis_url`, they share it, and an arq worker runs beside them (one more process)."""
    base = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV}
    api = Api([], [], [])
    try:
        for n in range(count):
            port = free_port()
            env = {
                **base, "PORT": str(port), "MONGODB_URI": mongo_uri, "JWT_SECRET": JWT_SECRET,
                "CHECKOUT_LIMIT": str(checkout_limit), "QUEUE_EXPIRY_SECONDS": "3600",
                "CHECKOUT_EXPIRY_SECONDS": "3600", "QUEUE_COOLDOWN_SECONDS": "3600",
                "DATA_DIR": str(workdir / f"api{n}-data"), "PYTHONUNBUFFERED": "1",
                **({"REDIS_URL": redis_url} if redis_url else {}),
            }
            log = workdir / f"api{n}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env, stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                )
            api.ports.append(port)
            api.procs.append(proc)
            api.logs.append(log)
        if redis_url:
            worker = spawn(workdir, "worker", "worker", mongodb_uri=mongo_uri, redis_url=redis_url,
                           checkout_limit=checkout_limit, queue_expiry_seconds=3600, checkout_expiry_seconds=3600,
                           queue_cooldown_seconds=3600)
            wait_worker_ready(worker)
            api.procs.append(worker.proc)
            api.logs.append(worker.log)
        deadline = time.monotonic() + 60
        for port, proc, log in zip(api.ports, api.procs, api.logs):
            while not _readyz(port):
                assert proc.poll() is None, f"API on {port} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"API on {port} not ready within 60s:\n{log.read_text()[-3000:]}"
                time.sleep(0.1)
        yield api
    finally:
        for proc in api.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        stop_by = time.monotonic() + 10  # aiohttp would wait 60s for requests still running
        for proc in api.procs:
            try:
                proc.wait(max(0.1, stop_by - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for proc in api.procs:
            assert proc.poll() is not None, f"API process {proc.pid} did not exit"


# --- seeding over HTTP --------------------------------------------------------------


@dataclass
class Sale:
    event_id: str
    types: dict[str, dict]  # TicketType -> the created ticket type


def seed(port: int, stock: dict[str, int]) -> Sale:
    organizer = issue_token(JWT_SECRET, "org-1", ["organizer"], 3600)
    venue = mutate(port, "CreateVenue", {"input": venue_input()}, organizer)["venue"]
    title = f"Sale day {uuid.uuid4().hex[:6]}"
    event = mutate(port, "CreateEvent", {"input": event_input(venue["id"], title=title)}, organizer)["event"]
    created = mutate(port, "CreateTickets", {"input": {"eventId": event["id"], "ticketTypes": [
        ticket_type_input(type=kind, quantityTotal=total, maxPerPurchase=4, priceCents=9900 if kind == "GENERAL" else 25000)
        for kind, total in stock.items()
    ]}}, organizer)["ticketTypes"]
    return Sale(event["id"], {t["type"]: t for t in created})


# --- the buyers -----------------------------------------------------------------------


def run_buyers(
    api: Api, sale: Sale, workdir: Path, *, buyers: int, admission_deadline_s: float, seed_text: str,
    before_go=None,
) -> list[dict]:
    """`buyers` buyers split over BUYER_PROCESSES OS processes, all let go at once; their records."""
    go_file = workdir / "go"
    per = -(-buyers // BUYER_PROCESSES)
    procs: list[tuple[subprocess.Popen, dict, Path]] = []
    try:
        for n in range(BUYER_PROCESSES):
            first = n * per
            config = {
                "ports": api.ports, "event_id": sale.event_id,
                "types": {kind: t["id"] for kind, t in sale.types.items()}, "secret": JWT_SECRET,
                "first_user": first, "buyers": min(per, buyers - first), "seed": seed_text,
                "admission_deadline_s": admission_deadline_s, "request_timeout_s": 30, "arrival_spread_s": 0.5,
                "ready_file": str(workdir / f"ready{n}"), "go_file": str(go_file), "out": str(workdir / f"buyers{n}.json"),
            }
            path = workdir / f"buyers{n}.config.json"
            path.write_text(json.dumps(config))
            log = workdir / f"buyers{n}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tests.sale.buyers", str(path)], cwd=ROOT, stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                )
            procs.append((proc, config, log))
        deadline = time.monotonic() + 60
        for proc, config, log in procs:
            while not Path(config["ready_file"]).exists():
                assert proc.poll() is None, f"buyer process exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "buyer processes not ready within 60s"
                time.sleep(0.01)
        if before_go:
            before_go()
        go_file.write_text("go")
        went = time.monotonic()
        # Admission is bounded by the deadline; every later step by the request timeout.
        finish_by = time.monotonic() + admission_deadline_s + 120
        for proc, config, log in procs:
            try:
                proc.wait(max(1.0, finish_by - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"buyer process {proc.pid} still running past its deadline:\n{log.read_text()[-3000:]}")
            assert proc.returncode == 0, f"buyer process failed ({proc.returncode}):\n{log.read_text()[-3000:]}"
        print(f"\n{buyers} buyers done in {time.monotonic() - went:.1f}s")
        records: list[dict] = []
        for proc, config, log in procs:
            records += json.loads(Path(config["out"]).read_text())
        return records
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


# --- sampling slot use while the sale runs -----------------------------------------------


@dataclass
class Sample:
    at: float
    admitted: int
    active_checkouts: int
    active_sessions: int


@dataclass
class Sampler:
    """Every ~20 ms: ADMITTED entries, the event's slot counter, ACTIVE sessions; every ~100 ms
    also a snapshot of the whole queue (seq, status, admitted or not), for the order check."""

    mongo_uri: str
    event_id: str
    interval: float = 0.02
    samples: list[Sample] = field(default_factory=list)
    snapshots: list[list[tuple[int, str, bool]]] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slot-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "sampler did not stop"

    def _run(self) -> None:
        client = MongoClient(self.mongo_uri, directConnection=True)
        try:
            db = client.get_default_database()
            event = ObjectId(self.event_id)
            n = 0
            while not self._stop.is_set():
                admitted = db.eventQueue.count_documents({"eventId": event, "status": "ADMITTED"})
                counter = db.events.find_one({"_id": event}, {"activeCheckouts": 1}) or {}
                sessions = db.eventQueue.count_documents({"eventId": event, **ACTIVE_SESSIONS})
                self.samples.append(Sample(time.time(), admitted, counter.get("activeCheckouts", 0), sessions))
                if n % 5 == 0:
                    docs = db.eventQueue.find(
                        {"eventId": event}, {"seq": 1, "status": 1, "admittedAtUtc": 1, "_id": 0}
                    ).sort("seq", -1).batch_size(10_000)  # one batch: one read snapshot
                    self.snapshots.append([(d["seq"], d["status"], d.get("admittedAtUtc") is not None) for d in docs])
                n += 1
                self._stop.wait(self.interval)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            client.close()


# --- the checks ----------------------------------------------------------------------------


def describe_unexpected(records: list[dict]) -> str:
    """The unexpected replies the buyers saw, grouped by kind, with one full example each."""
    kinds: dict[str, list[str]] = {}
    for r in records:
        for what in r["unexpected"]:
            kind = re.sub(r"\d+", "N", what.splitlines()[0].split(":")[0])
            kinds.setdefault(kind, []).append(f"{r['user']}: {what}")
    affected = sum(bool(r["unexpected"]) for r in records)
    lines = [f"{affected} of {len(records)} buyers saw unexpected replies:"]
    for kind, seen in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"- {len(seen)} x {kind}; e.g. {seen[0][:1500]}")
    return "\n".join(lines)


def refusals_by_plan(orders: list[dict], types: dict[str, dict]) -> Counter:
    """FAILED orders counted by their code and what they asked for (to explain unsold stock)."""
    return Counter(
        (o["failure"]["code"], tuple((types[str(i["ticketTypeId"])]["type"], i["quantity"]) for i in o["items"]))
        for o in orders if o["state"] == "FAILED"
    )


def check_inventory_and_tickets(db, sale: Sale, records: list[dict]) -> dict:
    """Invariants 1, 5 and 6 in the database, and every buyer's account of the sale against it."""
    event = ObjectId(sale.event_id)
    types = {str(t["_id"]): t for t in db.eventTickets.find({"eventId": event})}
    assert len(types) == len(sale.types)
    tickets = list(db.userTickets.find({"eventId": event}))
    orders = list(db.orders.find({"eventId": event}))

    # Invariant 1: no type oversold; quantitySold counts exactly the issued, non-cancelled tickets.
    issued_by_type = Counter(str(t["eventTicketId"]) for t in tickets if t["status"] != "CANCELLED")
    for type_id, t in types.items():
        assert 0 <= t["quantitySold"] <= t["quantityTotal"], f"oversold: {t}"
        assert t["quantitySold"] == issued_by_type[type_id], (
            f"{t['type']}: quantitySold {t['quantitySold']} but {issued_by_type[type_id]} tickets issued"
        )
    assert sum(t["quantitySold"] for t in types.values()) == len(tickets)

    # Invariant 6: unique ticket ids, numbers and codes.
    for key in ("_id", "ticketNumber", "confirmationCode"):
        dupes = [v for v, n in Counter(t[key] for t in tickets).items() if n > 1]
        assert not dupes, f"duplicate {key}: {dupes}"
    assert all(len(t["confirmationCode"]) >= 16 for t in tickets)

    # Nothing in flight once the crowd is done; every order is all or nothing.
    states = Counter(o["state"] for o in orders)
    assert set(states) <= {"COMPLETED", "FAILED"}, f"orders left in flight: {states}"
    by_order: dict[ObjectId, list[dict]] = {}
    for t in tickets:
        by_order.setdefault(t["orderId"], []).append(t)
    completed = {o["_id"]: o for o in orders if o["state"] == "COMPLETED"}
    assert set(by_order) <= set(completed), "tickets belong to an order that did not complete"
    for o in orders:
        issued = by_order.get(o["_id"], [])
        if o["state"] == "FAILED":
            assert not issued, f"a FAILED order issued tickets: {o['_id']}"
            assert o["failure"]["code"] in LOSING_CODES, o["failure"]
            continue
        wanted = Counter({str(i["ticketTypeId"]): i["quantity"] for i in o["items"]})
        assert Counter(str(t["eventTicketId"]) for t in issued) == wanted, f"order {o['_id']} is partial: {issued}"
        assert sorted(str(t["_id"]) for t in issued) == sorted(p["id"] for p in o["tickets"])
        assert {t["ticketNumber"] for t in issued} == {p["ticketNumber"] for p in o["tickets"]}
        assert all(t["userId"] == o["userId"] and t["status"] == "VALID" for t in issued)
    per_user = Counter(o["userId"] for o in completed.values())
    assert max(per_user.values(), default=1) == 1, f"a buyer got two orders: {per_user.most_common(3)}"

    # The sessions: none left ACTIVE, each completed order's session recorded COMPLETED.
    assert db.eventQueue.count_documents({"eventId": event, **ACTIVE_SESSIONS}) == 0
    sessions = {s["_id"]: s for s in db.checkoutSessions.find({"eventId": event})}
    assert Counter(s["status"] for s in sessions.values())["ACTIVE"] == 0
    for o in completed.values():
        assert sessions[o["sessionId"]]["status"] == "COMPLETED", sessions[o["sessionId"]]
        assert sessions[o["sessionId"]]["userId"] == o["userId"]

    # The buyers' side of the story.
    assert not any(r["unexpected"] for r in records), describe_unexpected(records)
    # Demand exceeds stock many times over, so (nearly) everything sells: a scripted
    # buyer who wanted two, or one of each type, may leave one or two behind when
    # the last of the other is gone. What may never happen is checked exactly above.
    for t in types.values():
        assert t["quantityTotal"] - t["quantitySold"] <= 2, (
            f"{t['type']} did not sell out: {t}; refusals by (code, items): {refusals_by_plan(orders, types)}"
        )
    outcomes = Counter(r["outcome"] for r in records)
    got = {r["user"]: r["order"] for r in records if r["outcome"] == "order"}
    assert {o["userId"] for o in completed.values()} == set(got), "orders in the database differ from the buyers' orders"
    for user, order in got.items():
        (stored,) = [o for o in completed.values() if o["userId"] == user]
        assert order["id"] == str(stored["_id"])
        db_tickets = sorted(by_order[stored["_id"]], key=lambda t: str(t["_id"]))
        assert [t["id"] for t in order["tickets"]] == [str(t["_id"]) for t in db_tickets]
        assert [t["confirmationCode"] for t in order["tickets"]] == [t["confirmationCode"] for t in db_tickets]
    for r in records:
        if r["outcome"] == "lost":
            assert r["purchaseErrors"] and all(set(codes) <= LOSING_CODES and codes for codes in r["purchaseErrors"]), r
    replays = [r for r in records if r["replay"] is not None]
    assert replays, "no buyer replayed a completed purchase"
    for r in replays:
        assert r["replay"] == r["order"], r
    return {"outcomes": outcomes, "tickets": len(tickets), "orders": states, "replays": len(replays)}


def check_queue(db, sale: Sale, records: list[dict], checkout_limit: int) -> list[dict]:
    """Invariants 2 and 4 at rest: one entry per buyer, unique seqs, every slot given back."""
    event = ObjectId(sale.event_id)
    entries = list(db.eventQueue.find({"eventId": event}))
    # A buyer whose double join straddled the sell-out holds the place its earlier twin took.
    joined = {r["user"] for r in records if r["join"] is not None or r.get("joinStraddledSellOut")}
    users = Counter(e["userId"] for e in entries)
    assert max(users.values()) == 1, f"two entries for one buyer: {users.most_common(3)}"
    assert set(users) == joined
    seqs = Counter(e["seq"] for e in entries)
    assert max(seqs.values()) == 1, f"a seq given twice: {seqs.most_common(3)}"
    stored = db.events.find_one({"_id": event})
    assert max(seqs) <= stored["nextQueueSeq"]
    by_user = {e["userId"]: e for e in entries}
    for r in records:
        if r.get("joinStraddledSellOut"):  # that place was closed (or used) with the sale, not left waiting
            assert by_user[r["user"]]["status"] not in ("WAITING", "ADMITTED"), by_user[r["user"]]
        if r.get("joinReplacedClosedPlace") is not None:  # twins got two places: the earlier was closed first
            earlier = [h for h in by_user[r["user"]].get("history", []) if h["seq"] == r["joinReplacedClosedPlace"]]
            assert earlier and earlier[-1]["status"] == "CLOSED", ("double join gave two places", by_user[r["user"]])
    for r in records:
        if r["join"] is not None:
            assert by_user[r["user"]]["seq"] == r["join"]["seq"], (r, by_user[r["user"]])
    statuses = Counter(e["status"] for e in entries)
    admitted_now = statuses["ADMITTED"]
    assert stored["activeCheckouts"] == admitted_now, (
        f"slot counter {stored['activeCheckouts']} but {admitted_now} entries ADMITTED: {statuses}"
    )
    assert 0 <= stored["activeCheckouts"] <= checkout_limit
    # Everybody bought, lost and left, was turned away when the queue closed at the
    # sell-out, or (rarely) gave up waiting and left.
    assert set(statuses) <= {"COMPLETED", "LEFT", "CLOSED"}, statuses
    for r in records:
        if r["join"] is None:
            continue
        e = by_user[r["user"]]
        expected = {"order": "COMPLETED", "closed": "CLOSED"}.get(r["outcome"], "LEFT")
        assert e["status"] == expected, (r["outcome"], e)
        if r["outcome"] in ("order", "lost"):
            assert e.get("admittedAtUtc") is not None, e
        assert e["joinedAtUtc"] <= r["join"]["answeredAt"]
    # Invariant 4 beyond the unique index: a loser who left could not rejoin.
    rejoined = [r for r in records if r["rejoin"] is not None]
    assert rejoined and all(r["rejoin"] == ["QUEUE_COOLDOWN"] for r in rejoined)
    return entries


def admission_inversions(entries: list[dict], records: list[dict]) -> list[str]:
    """Invariant 3 by the stored times: if b (lower seq) was certainly WAITING when a was
    admitted, b was admitted no later (within STAMP_SKEW_MS), or had left before."""
    answered = {r["user"]: r["join"]["answeredAt"] for r in records if r["join"] is not None}
    found = []
    for a in entries:
        if a.get("admittedAtUtc") is None:
            continue
        for b in entries:
            if b["seq"] >= a["seq"]:
                continue
            # b's joinQueue had answered (so b was in the queue) before a was admitted. (A buyer
            # whose kept answer was SOLD_OUT, its twin's place straddling the sell-out, says nothing.)
            if b["userId"] not in answered or answered[b["userId"]] >= a["admittedAtUtc"]:
                continue
            if b.get("admittedAtUtc") is None:
                if b.get("endedAtUtc", 0) > a["admittedAtUtc"] + STAMP_SKEW_MS:
                    found.append(f"seq {a['seq']} admitted at {a['admittedAtUtc']} while seq {b['seq']} waited: {b}")
            elif b["admittedAtUtc"] > a["admittedAtUtc"] + STAMP_SKEW_MS:
                found.append(
                    f"seq {a['seq']} admitted at {a['admittedAtUtc']}, before seq {b['seq']} "
                    f"(in the queue since {answered[b['userId']]}) at {b['admittedAtUtc']}"
                )
    return found


def snapshot_inversions(snapshots: list[list[tuple[int, str, bool]]]) -> list[str]:
    """Invariant 3 by the sampler's snapshots, free of clock skew: if a and b (b.seq < a.seq)
    were both WAITING in one snapshot and a later one shows a admitted while b still
    WAITING, a was admitted past b."""
    first_waiting: dict[int, int] = {}
    last_waiting: dict[int, int] = {}
    for i, snap in enumerate(snapshots):
        for seq, status, _ in snap:
            if status == "WAITING":
                first_waiting.setdefault(seq, i)
                last_waiting[seq] = i
    found = []
    for j, snap in enumerate(snapshots):
        waiting = sorted((seq, first_waiting[seq]) for seq, status, _ in snap if status == "WAITING")
        if not waiting:
            continue
        seqs = [s for s, _ in waiting]
        prefix_min: list[int] = []
        for _, first in waiting:
            prefix_min.append(min(first, prefix_min[-1]) if prefix_min else first)
        for seq, status, was_admitted in snap:
            if not was_admitted or seq not in last_waiting or last_waiting[seq] >= j:
                continue
            k = bisect_left(seqs, seq)  # WAITING entries with a lower seq: seqs[:k]
            if k and prefix_min[k - 1] <= last_waiting[seq]:
                found.append(
                    f"snapshot {j}: seq {seq} ({status}) was admitted while lower seqs {seqs[:k][:10]} "
                    f"still waited (all WAITING together in snapshot {last_waiting[seq]})"
                )
    return found


# --- the scenarios -----------------------------------------------------------------------------


def test_limit_above_the_crowd_never_oversells(mongo: EmbeddedMongo, tmp_path: Path) -> None:
    """240 buyers from 2 processes through 2 API processes, CHECKOUT_LIMIT 1000, 110 tickets."""
    started = time.monotonic()
    limit, buyers = 1000, 240
    uri = mongo.uri(f"conc1_{uuid.uuid4().hex[:8]}")
    with api_processes(uri, limit, tmp_path) as api:
        sale = seed(api.ports[0], {"GENERAL": 80, "VIP": 30})
        records = run_buyers(api, sale, tmp_path, buyers=buyers, admission_deadline_s=45, seed_text="s1")
        with MongoClient(uri, directConnection=True) as client:
            db = client.get_default_database()
            summary = check_inventory_and_tickets(db, sale, records)
            entries = check_queue(db, sale, records, limit)
        problems = api.log_problems()
    assert len(records) == buyers
    assert summary["outcomes"]["timeout"] == 0 and summary["outcomes"]["order"] >= 50, summary
    assert 106 <= summary["tickets"] <= 110
    inversions = admission_inversions(entries, records)
    assert not inversions, inversions[:10]
    assert not problems, "server faults logged:\n" + "\n".join(problems[:40])
    print(f"\nscenario 1: {summary} in {time.monotonic() - started:.1f}s")


def test_limit_five_throttles_and_admits_in_order(mongo: EmbeddedMongo, redis_server, tmp_path: Path) -> None:
    """200 buyers from 2 processes through 2 API processes and the worker, CHECKOUT_LIMIT 5, 55
    tickets: purchases and leaves free slots while others join; slots sampled every ~20 ms."""
    started = time.monotonic()
    limit, buyers = 5, 200
    uri = mongo.uri(f"conc2_{uuid.uuid4().hex[:8]}")
    with api_processes(uri, limit, tmp_path, redis_url=redis_server.url()) as api:
        sale = seed(api.ports[0], {"GENERAL": 40, "VIP": 15})
        sampler = Sampler(uri, sale.event_id)
        try:
            records = run_buyers(
                api, sale, tmp_path, buyers=buyers, admission_deadline_s=90, seed_text="s2", before_go=sampler.start
            )
        finally:
            sampler.stop()
        with MongoClient(uri, directConnection=True) as client:
            db = client.get_default_database()
            summary = check_inventory_and_tickets(db, sale, records)
            entries = check_queue(db, sale, records, limit)
        problems = api.log_problems()
    assert sampler.error is None, repr(sampler.error)
    assert len(records) == buyers

    # Invariant 2: never more than CHECKOUT_LIMIT slots held, at any sampled moment.
    samples = sampler.samples
    assert len(samples) >= 100, f"only {len(samples)} samples"
    over = [s for s in samples if max(s.admitted, s.active_checkouts, s.active_sessions) > limit]
    assert not over, f"{len(over)} samples above the limit of {limit}: {over[:10]}"
    assert max(s.active_checkouts for s in samples) == limit, "the crowd never filled the slots: nothing was tested"
    assert max(s.admitted for s in samples) == limit

    # The queue really was a queue: most buyers waited.
    assert sum(r["join"]["status"] == "WAITING" for r in records if r["join"]) >= buyers - 2 * limit
    timeouts = [r["user"] for r in records if r["outcome"] == "timeout"]
    assert len(timeouts) <= 3, f"{len(timeouts)} buyers were never admitted within 90s: {timeouts[:20]}"
    # The last ticket closed the queue: the crowd still waiting was told, not left to wait.
    assert summary["outcomes"]["closed"] >= buyers // 2, summary["outcomes"]

    # Invariant 3: admission in seq order.
    inversions = admission_inversions(entries, records)
    assert not inversions, f"{len(inversions)} admissions out of seq order: {inversions[:10]}"
    assert len(sampler.snapshots) >= 20
    inversions = snapshot_inversions(sampler.snapshots)
    assert not inversions, f"{len(inversions)} admissions out of seq order: {inversions[:10]}"
    assert not problems, "server faults logged:\n" + "\n".join(problems[:40])
    print(
        f"\nscenario 2: {summary}, {len(samples)} samples (max admitted {max(s.admitted for s in samples)}, "
        f"max activeCheckouts {max(s.active_checkouts for s in samples)}, "
        f"max ACTIVE sessions {max(s.active_sessions for s in samples)}), "
        f"{len(sampler.snapshots)} snapshots, in {time.monotonic() - started:.1f}s"
    )
