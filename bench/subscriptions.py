"""The subscriptions scenario (DESIGN section 7, issue 9): thousands of waiting buyers, each
with `queueUpdates` open on a websocket of its own, as Apollo's GraphQLWsLink opens it.

It reports the API process's memory per open subscription (its RSS before and after
they open), its CPU while they idle, how long after a change every position is right
(the buyer at the front leaves: everyone behind moves up one), and whether the next
buyer's ADMITTED push arrives before the purchase that freed the slot is answered.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from app.auth import issue_token
from bench.documents import document
from bench.reads import JWT_SECRET
from bench.seed import Sale, seed_sale
from bench.stack import embedded_stack
from bench.wsclient import Subscription

TARGET_KB = 30.0
TARGET_POSITIONS_S = 1.0
OPEN_AT_ONCE = 100


@dataclass(frozen=True)
class SubscriptionsConfig:
    name: str = "subscriptions"
    subscribers: int = 10_000
    idle_seconds: float = 5.0
    admissions: int = 5  # purchases whose next buyer's push is timed against the answer


def run_subscriptions(config: SubscriptionsConfig, workdir: Path) -> dict[str, Any]:
    """Start the embedded stack (CHECKOUT_LIMIT 1), seed a sale, measure; the figures."""
    with embedded_stack(workdir, apis=1, checkout_limit=1, jwt_secret=JWT_SECRET) as stack:
        sale = seed_sale(stack.api_ports[0], JWT_SECRET, tickets=config.admissions + 2)
        figures = asyncio.run(_measure(config, stack.api_ports[0], stack.apis[0].proc.pid, sale))
        problems = stack.log_problems()
    return {"scenario": asdict(config), **figures, "server_problems": problems[:20]}


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Api:
    def __init__(self, http: aiohttp.ClientSession, port: int, event_id: str) -> None:
        self.http, self.url, self.event_id = http, f"http://127.0.0.1:{port}/graphql", event_id

    async def call(self, name: str, token: str, variables: dict | None = None) -> dict:
        body = {"query": document(name), "variables": variables or {"eventId": self.event_id}}
        async with self.http.post(self.url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
            payload = await response.json()
        if payload.get("errors"):
            raise RuntimeError(f"{name}: {payload['errors']}")
        (result,) = payload["data"].values()
        if result.get("errors"):
            raise RuntimeError(f"{name}: {result['errors']}")
        return result


def _watch(sub: Subscription, wanted: Callable[[dict], bool]) -> asyncio.Future[float | None]:
    """When (monotonic) `sub` first shows an entry for which `wanted` holds (None if it ends first)."""
    return sub.first(lambda payload: _shows(payload, wanted))


async def _heard(watched: list[asyncio.Future[float | None]], deadline: float) -> list[float | None]:
    """Each watch's time, None for those not heard by `deadline`."""
    await asyncio.wait(watched, timeout=max(0.0, deadline - time.monotonic()))
    return [w.result() if w.done() else None for w in watched]


def _shows(payload: dict, wanted: Callable[[dict], bool]) -> bool:
    entry = (payload.get("data") or {}).get("queueUpdates")
    return bool(entry) and wanted(entry)


async def _measure(config: SubscriptionsConfig, port: int, pid: int, sale: Sale) -> dict[str, Any]:
    tokens = [issue_token(JWT_SECRET, f"watcher-{i}", [], 3600) for i in range(config.subscribers + 1)]
    holder, waiting = tokens[0], tokens[1:]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        api = _Api(http, port, sale.event_id)
        await api.call("JoinQueue", holder)  # CHECKOUT_LIMIT 1: everyone else waits behind this buyer
        await api.call("StartCheckout", holder)
        for start in range(0, len(waiting), 200):
            await asyncio.gather(*(api.call("JoinQueue", t) for t in waiting[start:start + 200]))
        await asyncio.sleep(2)
        before = _rss_kb(pid)

        subs: list[Subscription] = []
        opened_at = time.monotonic()
        query, variables = document("QueueUpdates"), {"eventId": sale.event_id}
        for start in range(0, len(waiting), OPEN_AT_ONCE):
            subs += await asyncio.gather(*(
                Subscription.open(http, api.url, t, query, variables) for t in waiting[start:start + OPEN_AT_ONCE]))
        firsts = [(await s.next())["data"]["queueUpdates"] for s in subs]
        open_seconds = time.monotonic() - opened_at
        await asyncio.sleep(3)
        after = _rss_kb(pid)
        idle_from = _cpu_seconds(pid)
        await asyncio.sleep(config.idle_seconds)
        idle_cpu = (_cpu_seconds(pid) - idle_from) / config.idle_seconds * 100

        # The buyer at the front leaves: every other position drops by one.
        places = [f["position"] for f in firsts]
        front = places.index(1)
        watched = [_watch(s, lambda e, p=p: e["position"] == p - 1)
                   for n, (s, p) in enumerate(zip(subs, places, strict=True)) if n != front]
        changed = time.monotonic()
        await api.call("LeaveQueue", waiting[front])
        heard = await _heard(watched, changed + 10)
        late = [h for h in heard if h is None]
        slowest = max((h - changed for h in heard if h is not None), default=None)

        # Purchases: the buyer behind is told ADMITTED before the buyer who bought hears back.
        buyer, by_place = holder, {p - 1: n for n, p in enumerate(places) if n != front}
        before_answer = []
        for round_ in range(1, config.admissions + 1):
            nxt = by_place[round_]
            pushed = _watch(subs[nxt], lambda e: e["status"] == "ADMITTED")
            await api.call("PurchaseTickets", buyer, {"input": {
                "eventId": sale.event_id, "idempotencyKey": f"round-{round_}",
                "items": [{"ticketTypeId": sale.ticket_type_id, "quantity": 1}]}})
            answered = time.monotonic()
            (at,) = await _heard([pushed], answered + 10)
            before_answer.append(at is not None and at <= answered)
            buyer = waiting[nxt]
            await api.call("StartCheckout", buyer)

        await asyncio.gather(*(s.close() for s in subs))
    return {
        "subscribers": config.subscribers,
        "rss_kb_before": before, "rss_kb_after": after,
        "kb_per_subscription": (after - before) / config.subscribers,
        "open_seconds": open_seconds,
        "idle_cpu_percent": idle_cpu,
        "positions_right_after_s": slowest,
        "positions_late": len(late),
        "admitted_before_answer": sum(before_answer), "admissions": len(before_answer),
    }


def subscriptions_table(result: dict) -> str:
    """The scenario's figures, the issue's targets beside them."""
    kb, slowest = result["kb_per_subscription"], result["positions_right_after_s"]
    rows = [
        ("open queueUpdates subscriptions", f"{result['subscribers']:,}"),
        (f"API memory per subscription (KB)  [<= {TARGET_KB:g}]", f"{kb:.1f}" + (" ok" if kb <= TARGET_KB else " MISSED")),
        ("  API RSS before / after (MB)", f"{result['rss_kb_before'] / 1024:.0f} / {result['rss_kb_after'] / 1024:.0f}"),
        ("opened in (s)", f"{result['open_seconds']:.1f}"),
        ("API CPU while they idle (% of a core)", f"{result['idle_cpu_percent']:.1f}"),
        (f"every position right, after a change (s)  [<= {TARGET_POSITIONS_S:g}]",
         "never" if slowest is None else f"{slowest:.2f}" + (" ok" if slowest <= TARGET_POSITIONS_S else " MISSED")),
        ("  positions not right within 10 s", str(result["positions_late"])),
        ("next buyer's ADMITTED before the purchase's answer",
         f"{result['admitted_before_answer']} of {result['admissions']}"),
    ]
    width = max(len(label) for label, _ in rows) + 4
    return "\n".join([f"subscriptions: {result['subscribers']:,} waiting buyers on one API process"]
                     + [f"{label:<{width}}{value:>12}" for label, value in rows])
