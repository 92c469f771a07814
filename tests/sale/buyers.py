"""A crowd of buyers in one OS process: `python -m tests.sale.buyers CONFIG.json`.

Started by tests/sale/test_concurrency.py, two or more at once. Each process
runs its share of buyers as concurrent asyncio tasks with aiohttp, over real
HTTP, against the API processes listed in the config (buyer i talks to port
i % len(ports), so every process hits every API process). It sends the very
documents in graphql/ that clients send.

Handshake: after set-up the process writes CONFIG["ready_file"], then waits
for CONFIG["go_file"] to exist, so that every process starts at the same
moment. It writes one JSON record per buyer to CONFIG["out"] and exits 0.

Each buyer: joinQueue -> poll queuePosition until ADMITTED or CLOSED (bounded) ->
startCheckout -> purchaseTickets (1-2 tickets of a random type, or one of
each type: all-or-nothing) with a unique idempotency key. A buyer told
INSUFFICIENT_INVENTORY tries once more for one of each item (new key); a
buyer told SOLD_OUT / INSUFFICIENT_INVENTORY leaves the queue (freeing the
slot) and checks that rejoining is refused with QUEUE_COOLDOWN. Some buyers
also probe the edges under load (see `Buyer.flags`): two joinQueue at once
through both API processes, two identical purchases at once, a replay of a
completed purchase, a purchase before checkout and one after completion.

Anything unexpected (a top-level GraphQL error, an HTTP error, an error code
outside what the step allows, replies that disagree) goes to the buyer's
`unexpected` list; the test fails on any.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import aiohttp

from app.auth import issue_token
from tests.factories import codes

DOCUMENTS = Path(__file__).resolve().parents[2] / "graphql"
LOSING_CODES = {"SOLD_OUT", "INSUFFICIENT_INVENTORY"}


def _document(name: str) -> str:
    (path,) = DOCUMENTS.rglob(f"{name}.graphql")
    return path.read_text()


DOCS = {name: _document(name) for name in (
    "JoinQueue", "LeaveQueue", "QueuePosition", "StartCheckout", "PurchaseTickets",
)}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Unexpected(Exception):
    """A reply no correct server gives to this request."""


class Crowd:
    def __init__(self, config: dict[str, Any], http: aiohttp.ClientSession) -> None:
        self.config = config
        self.http = http
        self.ports: list[int] = config["ports"]
        self.event_id: str = config["event_id"]
        self.types: dict[str, str] = config["types"]  # TicketType -> ticket type id
        self.go_at = 0.0

    async def call(self, port: int, name: str, variables: dict, token: str) -> dict:
        """POST a document; return the root field's value (asserting HTTP 200, no top-level errors)."""
        try:
            async with self.http.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": DOCS[name], "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                text = await response.text()
                if response.status != 200:
                    raise Unexpected(f"{name}: HTTP {response.status}: {text[:500]}")
        except TimeoutError:
            raise Unexpected(
                f"{name}: no answer within {self.config['request_timeout_s']}s (API on port {port})"
            ) from None
        body = json.loads(text)
        if body.get("errors"):
            raise Unexpected(f"{name}: top-level errors {body['errors']}")
        (value,) = body["data"].values()
        return value




def order_summary(order: dict) -> dict:
    return {
        "id": order["id"],
        "userId": order["userId"],
        "tickets": sorted(
            ({"id": t["id"], "ticketNumber": t["ticketNumber"], "confirmationCode": t["confirmationCode"],
              "ticketTypeId": t["ticketTypeId"], "ticketType": t["ticketType"], "orderId": t["orderId"]}
             for t in order["tickets"]),
            key=lambda t: t["id"],
        ),
    }


class Buyer:
    def __init__(self, crowd: Crowd, index: int) -> None:
        self.crowd = crowd
        self.index = index
        self.user = f"buyer-{index}"
        self.token = issue_token(crowd.config["secret"], self.user, [], 3600)
        self.port = crowd.ports[index % len(crowd.ports)]
        self.other_port = crowd.ports[(index + 1) % len(crowd.ports)]
        rng = random.Random(f"{crowd.config['seed']}:{index}")
        self.rng = rng
        r = rng.random()
        general, vip = crowd.types["GENERAL"], crowd.types["VIP"]
        if r < 0.30:
            plan = [(general, 1)]
        elif r < 0.45:
            plan = [(general, 2)]
        elif r < 0.60:
            plan = [(vip, 1)]
        elif r < 0.70:
            plan = [(vip, 2)]
        else:
            plan = [(general, 1), (vip, 1)]  # two items: all or nothing
        self.plan = plan
        self.flags = {
            "double_join": index % 10 == 1,       # joinQueue twice at once, through both API processes
            "double_purchase": index % 10 == 2,   # the same purchase twice at once (a double submit)
            "replay": index % 5 == 3,             # retry the completed purchase with its key (on both API ports)
            "early_purchase": index % 20 == 4,    # purchase before startCheckout: NO_ACTIVE_CHECKOUT
            "buy_again": index % 20 == 5,         # a new key after completion: NO_ACTIVE_CHECKOUT
        }
        self.record: dict[str, Any] = {
            "user": self.user, "index": index, "port": self.port, "plan": plan, "flags": self.flags,
            "outcome": None, "join": None, "admittedSeenAt": None, "polls": 0, "purchaseErrors": [],
            "order": None, "replay": None, "unexpected": [], "left": None, "rejoin": None,
        }

    def unexpected(self, what: str) -> None:
        self.record["unexpected"].append(what)

    async def call(self, name: str, variables: dict, port: int | None = None) -> dict:
        return await self.crowd.call(port or self.port, name, variables, self.token)

    async def run(self, deadline: float) -> dict:
        try:
            await self._run(deadline)
        except Unexpected as error:
            self.unexpected(str(error))
            self.record["outcome"] = self.record["outcome"] or "error"
        except Exception as error:  # noqa: BLE001 - a timeout or a dropped connection is a finding
            self.unexpected(f"{type(error).__name__}: {error!r}\n{traceback.format_exc(limit=3)}")
            self.record["outcome"] = self.record["outcome"] or "error"
        return self.record

    async def _run(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.rng.uniform(0, self.crowd.config.get("arrival_spread_s", 0.3)))
        event = {"eventId": self.crowd.event_id}

        # 1. Join (M3); some buyers double-submit through both API processes.
        self.record["joinSentAt"] = now_ms()
        if self.flags["double_join"]:
            first, second = await asyncio.gather(
                self.call("JoinQueue", event), self.call("JoinQueue", event, self.other_port)
            )
            if {tuple(codes(first)), tuple(codes(second))} == {(), ("SOLD_OUT",)}:
                # One twin was answered before the sell-out and the other after it: both true
                # when given. The test checks that this buyer's place was closed.
                self.record["joinStraddledSellOut"] = True
            elif codes(first) != codes(second):
                self.unexpected(f"double join answered differently: {first} / {second}")
            elif first["entry"] and first["entry"]["seq"] != second["entry"]["seq"]:
                # Only if the earlier place was closed at a sell-out and the sale reopened before
                # the later twin took its place, which replaced the closed one: the test checks
                # the entry's history for it.
                first, second = sorted((first, second), key=lambda j: j["entry"]["seq"], reverse=True)
                self.record["joinReplacedClosedPlace"] = second["entry"]["seq"]
            joined = first
        else:
            joined = await self.call("JoinQueue", event)
        answered_at = now_ms()
        if joined["errors"]:
            if set(codes(joined)) <= {"SOLD_OUT"}:  # the event sold out before this buyer arrived
                self.record.update(outcome="lost", purchaseErrors=[codes(joined)], joinRefused=True)
                return
            raise Unexpected(f"joinQueue: {joined['errors']}")
        entry = joined["entry"]
        self.record["join"] = {"seq": entry["seq"], "status": entry["status"], "answeredAt": answered_at,
                               "position": entry["position"]}
        if entry["status"] not in ("WAITING", "ADMITTED"):
            raise Unexpected(f"joinQueue returned {entry}")
        if (entry["status"] == "WAITING") != (entry["position"] is not None):
            self.unexpected(f"joinQueue position does not match status: {entry}")

        # 2. A purchase now must be refused: no checkout session yet.
        if self.flags["early_purchase"]:
            early = await self._purchase(f"{self.user}-early", self.plan)
            if codes(early) != ["NO_ACTIVE_CHECKOUT"]:
                self.unexpected(f"purchase before checkout: {early}")

        # 3. Wait for admission (Q3), politely: fast near the front, slower far back.
        status, position = entry["status"], entry["position"]
        while status == "WAITING":
            if loop.time() > deadline:
                left = await self.call("LeaveQueue", event)
                self.record.update(outcome="timeout", left=left)
                return
            if position is None or position <= 10:
                pause = self.rng.uniform(0.05, 0.1)
            else:
                pause = min(2.0, 0.02 * position) * self.rng.uniform(0.8, 1.2)
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time()) + 0.01))
            current = await self.call("QueuePosition", event)
            self.record["polls"] += 1
            if current is None or current["seq"] != entry["seq"]:
                raise Unexpected(f"queuePosition lost the entry: {current}")
            status, position = current["status"], current["position"]
            if status == "WAITING" and (position is None or position < 1):
                self.unexpected(f"WAITING without a position: {current}")
            if status == "CLOSED":  # the event sold out while this buyer waited: an answer, not a wait
                self.record["outcome"] = "closed"
                return
            if status not in ("WAITING", "ADMITTED"):
                raise Unexpected(f"entry went {status} while waiting: {current}")
        self.record["admittedSeenAt"] = now_ms()

        # 4. Checkout (M6).
        started = await self.call("StartCheckout", event)
        if codes(started) == ["SOLD_OUT"]:  # admitted, then the queue closed before checkout began
            self.record["outcome"] = "closed"
            return
        if started["errors"]:
            raise Unexpected(f"startCheckout after admission: {started['errors']}")
        if started["session"]["status"] != "ACTIVE" or started["session"]["userId"] != self.user:
            raise Unexpected(f"startCheckout: {started['session']}")
        self.record["sessionId"] = started["session"]["id"]

        # 5. Buy (M5), all or nothing.
        key = f"{self.user}-k1"
        bought = await self._buy(key, self.plan)
        if bought is None and self.record["purchaseErrors"][-1] == ["INSUFFICIENT_INVENTORY"] and any(
            q > 1 for _, q in self.plan
        ):
            # "Only 1 left": settle for one of each, with a new key (a new request).
            key = f"{self.user}-k2"
            bought = await self._buy(key, [(t, 1) for t, _ in self.plan])
        if bought is None:
            left = await self.call("LeaveQueue", event)
            self.record["left"] = left
            if left["errors"] or left["entry"]["status"] != "LEFT":
                self.unexpected(f"leaveQueue after losing: {left}")
            again = await self.call("JoinQueue", event, self.other_port)
            self.record["rejoin"] = codes(again)
            if codes(again) != ["QUEUE_COOLDOWN"]:
                self.unexpected(f"rejoin inside the cooldown: {again}")
            self.record["outcome"] = "lost"
            return
        self.record["outcome"] = "order"
        self.record["order"] = order_summary(bought)
        self.record["orderKey"] = key

        # 6. Retries and probes after completion.
        if self.flags["replay"]:
            replay = await self._purchase(key, self.record["orderPlan"], self.other_port)
            if replay["errors"] or replay["order"] is None:
                self.unexpected(f"replay of a completed purchase: {replay}")
            else:
                self.record["replay"] = order_summary(replay["order"])
                if self.record["replay"] != self.record["order"]:
                    self.unexpected(f"replay returned another order: {self.record['replay']} vs {self.record['order']}")
        if self.flags["buy_again"]:
            again = await self._purchase(f"{self.user}-again", self.plan)
            if codes(again) != ["NO_ACTIVE_CHECKOUT"]:
                self.unexpected(f"purchase after the checkout completed: {again}")

    async def _purchase(self, key: str, plan: list[tuple[str, int]], port: int | None = None) -> dict:
        variables = {"input": {
            "eventId": self.crowd.event_id, "idempotencyKey": key,
            "items": [{"ticketTypeId": t, "quantity": q} for t, q in plan],
        }}
        return await self.call("PurchaseTickets", variables, port)

    async def _buy(self, key: str, plan: list[tuple[str, int]]) -> dict | None:
        """One purchase attempt; the order, or None after recording the losing codes."""
        self.record["orderPlan"] = plan
        if self.flags["double_purchase"]:
            first, second = await asyncio.gather(
                self._purchase(key, plan), self._purchase(key, plan, self.other_port)
            )
            one = (codes(first), first["order"] and first["order"]["id"])
            two = (codes(second), second["order"] and second["order"]["id"])
            if one != two:
                self.unexpected(f"a double submit with key {key} was answered differently: {first} / {second}")
            self.record["doubleSubmit"] = [one, two]
            result = first if first["order"] else second
        else:
            result = await self._purchase(key, plan)
        if result["order"] is not None:
            order = result["order"]
            wanted = sorted((t, q) for t, q in plan)
            got: dict[str, int] = {}
            for ticket in order["tickets"]:
                got[ticket["ticketTypeId"]] = got.get(ticket["ticketTypeId"], 0) + 1
            if sorted(got.items()) != wanted or order["userId"] != self.user:
                self.unexpected(f"order does not match the request {plan}: {order}")
            return order
        errors = codes(result)
        self.record["purchaseErrors"].append(errors)
        if not errors or not set(errors) <= LOSING_CODES:
            raise Unexpected(f"purchaseTickets: {result['errors']}")
        return None


async def main(config: dict[str, Any]) -> list[dict]:
    users = range(config["first_user"], config["first_user"] + config["buyers"])
    timeout = aiohttp.ClientTimeout(total=config.get("request_timeout_s", 30))
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        crowd = Crowd(config, http)
        buyers = [Buyer(crowd, i) for i in users]
        Path(config["ready_file"]).write_text("ready")
        go = Path(config["go_file"])
        give_up = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > give_up:
                raise SystemExit("no go signal within 60s")
            await asyncio.sleep(0.002)
        deadline = asyncio.get_running_loop().time() + config["admission_deadline_s"]
        return await asyncio.gather(*(b.run(deadline) for b in buyers))


if __name__ == "__main__":
    cfg = json.loads(Path(sys.argv[1]).read_text())
    records = asyncio.run(main(cfg))
    Path(cfg["out"]).write_text(json.dumps(records))
