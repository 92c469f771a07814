"""One rush (DESIGN section 7): N buyers against S tickets on a fresh embedded default.

In order: start the stack; measure the server's raw guarded-update rate in a
database of its own; seed the event through the API; count the server's
commands; start the buyer processes and let every buyer go at the same
instant; when the event sells out, tell the buyer processes, which give up
on whoever still has no answer `grace_s` later; count again, read every
process's CPU, check the database, and compute the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from app.embedded import _die_with_parent
from bench import cpu, dbstats, netstat, trace
from bench.checks import check_sale, wait_for_orders_to_settle, wait_for_queue_to_close
from bench.figures import rush_figures
from bench.profile import Profiler
from bench.rawrate import guarded_update_rate
from bench.seed import Sale, seed_sale
from bench.stack import DATABASE, ROOT, Stack, embedded_stack

JWT_SECRET = "bench-secret-long-enough-for-hs256-signatures"
START_DELAY_S = 0.5  # the go message reaches every buyer process before the common start
READY_SECONDS = 60
PRETIX_ORDERS_PER_S = 12.5


@dataclass(frozen=True)
class RushConfig:
    """One scenario: who buys what, against how many API processes, and how long we wait."""

    name: str
    buyers: int = 200
    tickets: int = 60
    checkout_limit: int = 50
    apis: int = 1
    buyer_processes: int = 2
    grace_s: float = 30.0  # after the sell-out, how long a buyer without an answer is waited for
    max_seconds: float = 180.0  # the whole rush, from the start, whatever happens
    raw_updates: int = 1200
    profile: bool = False  # sample the database and API processes with py-spy until the sell-out
    trace: bool = False  # record every database command (slows the rush: for small runs)
    holds: bool = False  # each buyer's checkout holds its ticket (startCheckout names it)


def run_rush(config: RushConfig, workdir: Path) -> dict[str, Any]:
    """Run one rush; its figures, server counts, CPU shares and checks."""
    started = time.time()
    with embedded_stack(workdir, apis=config.apis, checkout_limit=config.checkout_limit, jwt_secret=JWT_SECRET) as stack:
        raw = asyncio.run(guarded_update_rate(stack.mongo.uri("bench_raw"), updates=config.raw_updates))
        sale = seed_sale(stack.api_ports[0], JWT_SECRET, config.tickets)
        with MongoClient(stack.uri, directConnection=True) as client:
            db = client[DATABASE]
            if config.trace:
                trace.start(db)
            crowd = asyncio.run(_run_crowd(config, stack, sale, workdir, client))
            traced = trace.stop_and_dump(db, workdir / "commands.jsonl") if config.trace else None
            in_flight = wait_for_orders_to_settle(db, sale)
            wait_for_queue_to_close(db, sale)  # a WAITING entry left after this is a finding
            checks = check_sale(db, sale, crowd["records"], config.checkout_limit, holds=config.holds)
        problems = stack.log_problems()
    _drop_data(workdir)

    figures = rush_figures(crowd["records"], go_at_ms=crowd["go_at"] * 1000, tickets=config.tickets)
    orders = figures["orders"]
    to_sell_out = dbstats.delta(crowd["db"]["go"], crowd["db"]["sold_out"]) if crowd["db"].get("sold_out") else None
    whole = dbstats.delta(crowd["db"]["go"], crowd["db"]["end"])
    rate = figures["orders_per_s"]
    return {
        "scenario": asdict(config),
        "raw_guarded_updates": raw,
        "figures": figures,
        "ratios": {
            "orders_per_raw_update": round(rate / raw["per_second"], 4) if rate else None,
            "orders_per_pretix": round(rate / PRETIX_ORDERS_PER_S, 3) if rate else None,
        },
        "db_commands": {
            "whole_rush": whole, "to_sell_out": to_sell_out,
            "per_order": dbstats.per_order(whole, orders),
            "per_order_to_sell_out": dbstats.per_order(to_sell_out, orders) if to_sell_out else {},
        },
        "cpu": crowd["cpu"],
        "profile": crowd["profile"],
        "listen_overflows": crowd["listen_overflows"],
        "trace": traced,
        "repair_corrections": [line.split("app.repair: ", 1)[1] for line in _worker_log(stack) if "app.repair: " in line],
        "client": crowd["client"],
        "checks": checks,
        "orders_in_flight_after_wait": in_flight,
        "server_log_problems": {"count": len(problems), "first": problems[:10]},
        "duration_s": round(time.time() - started, 1),
        "workdir": str(workdir),
    }


def _worker_log(stack: Stack) -> list[str]:
    return stack.worker.log.read_text(errors="replace").splitlines() if stack.worker else []


def _drop_data(workdir: Path) -> None:
    """The database files of a finished rush are of no further use; the logs stay."""
    for path in (workdir / "mongo" / "data", workdir / "redis" / "appendonlydir"):
        shutil.rmtree(path, ignore_errors=True)


class _BuyerProcess:
    """One `python -m bench.buyer` child and the JSON lines it sends."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, out: Path, log: Path) -> None:
        self.name, self.proc, self.out, self.log = name, proc, out, log
        self.ready = asyncio.Event()
        self.done: dict | None = None

    async def send(self, message: dict) -> None:
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            await self.proc.stdin.drain()


async def _start_buyers(config: RushConfig, stack: Stack, sale: Sale, workdir: Path) -> list[_BuyerProcess]:
    procs: list[_BuyerProcess] = []
    for n in range(config.buyer_processes):
        users = list(range(n, config.buyers, config.buyer_processes))
        out, log = workdir / f"buyers{n}.json", workdir / f"buyers{n}.log"
        with open(log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.buyer", cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - a killed bench leaves no buyer behind
                limit=1 << 24,
            )
        buyer = _BuyerProcess(f"buyers{n}", proc, out, log)
        procs.append(buyer)
        await buyer.send({
            "ports": stack.api_ports, "event_id": sale.event_id, "ticket_type_id": sale.ticket_type_id,
            "secret": JWT_SECRET, "users": users, "out": str(out), "grace_s": config.grace_s, "holds": config.holds,
        })
    return procs


async def _run_crowd(config: RushConfig, stack: Stack, sale: Sale, workdir: Path, client: MongoClient) -> dict:
    """Start the buyer processes, let them go together, watch for the sell-out, collect everything."""
    procs: list[_BuyerProcess] = []
    listeners: list[asyncio.Task] = []
    profiler: Profiler | None = None
    try:
        procs = await _start_buyers(config, stack, sale, workdir)
        sold = {"tickets": 0, "at": None}
        sold_out, all_done, crashed = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def listen(buyer: _BuyerProcess) -> None:
            assert buyer.proc.stdout is not None
            async for line in buyer.proc.stdout:
                message = json.loads(line)
                kind = message["kind"]
                if kind == "ready":
                    buyer.ready.set()
                elif kind == "order":
                    sold["tickets"] += message["tickets"]
                elif kind == "done":
                    buyer.done = message
                    if all(p.done for p in procs):
                        all_done.set()
                gone = kind == "sold_out" or (kind == "order" and sold["tickets"] >= sale.tickets)
                if gone and not sold_out.is_set():
                    sold["at"] = time.time()
                    sold_out.set()
            if buyer.done is None:  # it exited before reporting: nothing more will come
                crashed.set()

        def failure(what: str) -> RuntimeError:
            return RuntimeError(what + "\n" + "\n".join(f"{p.name}: {p.log.read_text()[-1500:]}" for p in procs))

        listeners = [asyncio.create_task(listen(p)) for p in procs]
        ready = asyncio.gather(*(p.ready.wait() for p in procs))
        if not await _first(ready, crashed.wait(), timeout=READY_SECONDS) or crashed.is_set():
            raise failure("buyer processes not ready")

        pids = stack.pids()
        all_pids = pids | {p.name: p.proc.pid for p in procs} | {"bench": os.getpid()}
        db = {"go": await asyncio.to_thread(dbstats.snapshot, client, DATABASE)}
        go_at = time.time() + START_DELAY_S
        deadline_at = go_at + config.max_seconds
        for p in procs:
            await p.send({"kind": "go", "at": go_at, "deadline_at": deadline_at})
        await asyncio.sleep(max(0.0, go_at - time.time()))
        cpu_go, overflows_go = cpu.snapshot(all_pids), netstat.listen_overflows()
        if config.profile:
            profiler = Profiler({k: v for k, v in pids.items() if k == "secantusdb" or k.startswith("api")}, workdir)

        cpu_sold_out = None
        await _first(sold_out.wait(), all_done.wait(), crashed.wait(), timeout=max(1.0, deadline_at - time.time()))
        if profiler:
            await asyncio.to_thread(profiler.stop)
        if sold_out.is_set():
            cpu_sold_out = cpu.snapshot(all_pids)
            db["sold_out"] = await asyncio.to_thread(dbstats.snapshot, client, DATABASE)
            for p in procs:
                await p.send({"kind": "sold_out", "at": sold["at"]})
        # Each buyer process gives up by itself (grace after the sell-out, or the deadline);
        # this bound only catches a buyer process that hangs.
        await _first(all_done.wait(), crashed.wait(), timeout=max(1.0, deadline_at + 60 - time.time()))
        if crashed.is_set():
            raise failure("a buyer process exited before reporting")
        if not all_done.is_set():
            raise failure("buyer processes did not finish by their deadline")
        cpu_end, overflows_end = cpu.snapshot(all_pids), netstat.listen_overflows()
        db["end"] = await asyncio.to_thread(dbstats.snapshot, client, DATABASE)
        records: list[dict] = []
        for p in procs:
            records += json.loads(p.out.read_text())
        records.sort(key=lambda r: r["index"])
        client_cpu = {p.name: p.done for p in procs}
        return {
            "records": records, "go_at": go_at, "db": db,
            "cpu": {
                "to_sell_out": cpu.busy_percent(cpu_go, cpu_sold_out) if cpu_sold_out else None,
                "whole_rush": cpu.busy_percent(cpu_go, cpu_end),
                "waited_for_a_core_to_sell_out": cpu.waited_percent(cpu_go, cpu_sold_out) if cpu_sold_out else None,
                "machine_to_sell_out": cpu.machine_percent(cpu_go, cpu_sold_out) if cpu_sold_out else None,
                "machine_whole_rush": cpu.machine_percent(cpu_go, cpu_end),
            },
            "client": {
                "processes": client_cpu,
                "cpu_percent_of_a_core": round(100 * sum(d["cpu_s"] for d in client_cpu.values()) / (cpu_end["at"] - go_at), 1),
                "sold_out_signal_after_s": round(sold["at"] - go_at, 3) if sold["at"] else None,
            },
            "profile": profiler.summary() if profiler else None,
            "listen_overflows": netstat.delta(overflows_go, overflows_end),
        }
    finally:
        if profiler:
            profiler.stop()
        for p in procs:  # also after a failure: a buyer process told to exit stops its buyers and goes
            if p.proc.returncode is None:
                try:
                    await p.send({"kind": "exit"})
                    await asyncio.wait_for(p.proc.wait(), 10)
                except (TimeoutError, ConnectionError):
                    p.proc.kill()
                    await p.proc.wait()
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


async def _first(*awaitables, timeout: float) -> bool:
    """Wait until the first of `awaitables` finishes (True) or `timeout` passes (False); cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
