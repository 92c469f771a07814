"""A buyer process of the rush: `python -m bench.buyer`, many buyers as asyncio tasks.

Each buyer does what the React app does: opens a `queueUpdates` subscription
(graphql-transport-ws, token in connection_init), calls `joinQueue`, waits to
be ADMITTED from that answer or from a push (never polling), then
`startCheckout` and `purchaseTickets` for one ticket with an idempotency key.

The harness (bench.rush) talks to this process in JSON lines. On stdin: the
config, then {"kind": "go", "at": <epoch s>}, {"kind": "sold_out", "at": ...}
and {"kind": "exit"}. On stdout: "ready", every "order" and "sold_out" as it
happens (so the harness knows when the event sold out), and "done" with the
process's CPU seconds once every buyer has an outcome, the records written to
config["out"]. A buyer still without an answer `grace_s` after the sell-out,
or at the go message's "deadline_at", is stopped and counted as "no answer".
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import aiohttp

from app.auth import issue_token
from bench.documents import document
from bench.wsclient import Subscription, SubscriptionEnded

# An answer that ends a buyer's hope: the sale is over for them.
REFUSALS = {"SOLD_OUT", "INSUFFICIENT_INVENTORY", "CLOSED"}
# Pushed queue statuses that end the wait without a slot.
CLOSING_STATUSES = {"CLOSED", "EXPIRED"}


def now_ms() -> float:
    return time.time() * 1000


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Unexpected(Exception):
    """A reply the flow has no place for (an HTTP error, a top-level error, an odd code)."""


class Buyer:
    """One buyer's run through the sale, and the record of what it saw and when."""

    def __init__(self, config: dict[str, Any], http: aiohttp.ClientSession, index: int) -> None:
        self.config, self.http = config, http
        ports = config["ports"]
        self.port = ports[index % len(ports)]
        self.user = f"buyer-{index}"
        self.token = issue_token(config["secret"], self.user, [], 3600 * 6)
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.record: dict[str, Any] = {
            "user": self.user, "index": index, "port": self.port, "step": "start", "outcome": None,
            "detail": None, "at": {}, "join": None, "admittedBy": None, "pushes": 0, "order": None,
        }

    def mark(self, what: str) -> None:
        self.record["at"][what] = now_ms()

    def answer(self, outcome: str, detail: Any = None) -> None:
        self.mark("answered")
        self.record.update(outcome=outcome, detail=detail, step="done")

    async def call(self, name: str, variables: dict) -> dict:
        """POST a document; the root field's payload (HTTP 200 and no top-level errors, or Unexpected)."""
        async with self.http.post(
            self.url, json={"query": document(name), "variables": variables},
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            text = await response.text()
        if response.status != 200:
            raise Unexpected(f"{name}: HTTP {response.status}: {text[:300]}")
        body = json.loads(text)
        if body.get("errors"):
            raise Unexpected(f"{name}: top-level errors {body['errors']}")
        (payload,) = body["data"].values()
        return payload

    def refused(self, step: str, payload: dict) -> None:
        """Record a refusal that ends the sale for us (SOLD_OUT...); any other error is Unexpected."""
        codes = [e["code"] for e in payload["errors"]]
        if not codes or not set(codes) <= REFUSALS:
            raise Unexpected(f"{step}: {payload['errors']}")
        self.answer("refused", {"step": step, "codes": codes})
        if "SOLD_OUT" in codes:
            emit({"kind": "sold_out", "at": time.time()})

    async def run(self) -> dict:
        try:
            await self._run()
        except Unexpected as error:
            self.answer("error", str(error)[:500])
        except (aiohttp.ClientError, SubscriptionEnded, ConnectionError, ValueError) as error:
            self.answer("error", f"{self.record['step']}: {type(error).__name__}: {error}"[:500])
        except Exception as error:  # noqa: BLE001 - a crash of one buyer is a finding, not the end of the run
            self.answer("error", f"{self.record['step']}: {traceback.format_exception_only(error)[-1].strip()}"[:500])
        return self.record

    async def _run(self) -> None:
        event_id = self.config["event_id"]
        self.mark("start")
        self.record["step"] = "subscribe"
        sub = await Subscription.open(self.http, self.url, self.token, document("QueueUpdates"), {"eventId": event_id})
        try:
            self.mark("subscribed")
            self.record["step"] = "join"
            self.mark("joinSent")
            joined = await self.call("JoinQueue", {"eventId": event_id})
            self.mark("joinAnswered")
            if joined["errors"]:
                self.refused("joinQueue", joined)
                return
            entry = joined["entry"]
            self.record["join"] = {"seq": entry["seq"], "status": entry["status"], "position": entry["position"]}
            if entry["status"] == "ADMITTED":
                self.record["admittedBy"] = "answer"
            elif entry["status"] == "WAITING":
                self.record["step"] = "wait"
                if not await self._wait_for_admission(sub):
                    return
            else:
                raise Unexpected(f"joinQueue answered {entry}")
            self.mark("admitted")

            self.record["step"] = "checkout"
            wanted = {"items": [{"ticketTypeId": self.config["ticket_type_id"], "quantity": 1}]} if self.config.get("holds") else {}
            started = await self.call("StartCheckout", {"eventId": event_id, **wanted})
            self.mark("checkoutAnswered")
            if started["errors"]:
                self.refused("startCheckout", started)
                return

            self.record["step"] = "purchase"
            bought = await self.call("PurchaseTickets", {"input": {
                "eventId": event_id, "idempotencyKey": f"{self.user}-rush",
                "items": [{"ticketTypeId": self.config["ticket_type_id"], "quantity": 1}],
            }})
            if bought["errors"]:
                self.mark("purchaseAnswered")
                self.refused("purchaseTickets", bought)
                return
            order = bought["order"]
            self.record["order"] = {
                "id": order["id"],
                "tickets": [{"ticketNumber": t["ticketNumber"], "confirmationCode": t["confirmationCode"]}
                            for t in order["tickets"]],
            }
            self.mark("purchaseAnswered")
            self.answer("order")
            emit({"kind": "order", "at": time.time(), "tickets": len(order["tickets"])})
        finally:
            self.record["pushes"] = sub.received
            await sub.close()

    async def _wait_for_admission(self, sub: Subscription) -> bool:
        """Read pushes until ADMITTED (True) or a status that ends the wait (False, outcome recorded)."""
        while True:
            payload = await sub.next()
            if payload.get("errors"):
                codes = [(e.get("extensions") or {}).get("code") for e in payload["errors"]]
                if codes and set(codes) <= REFUSALS:
                    self.answer("refused", {"step": "queueUpdates", "codes": codes})
                    return False
                raise Unexpected(f"queueUpdates: {payload['errors']}")
            status = payload["data"]["queueUpdates"]["status"]
            if status == "ADMITTED":
                self.record["admittedBy"] = "push"
                return True
            if status in CLOSING_STATUSES:
                self.answer("closed", {"step": "queueUpdates", "status": status})
                if status == "CLOSED":
                    emit({"kind": "sold_out", "at": time.time()})
                return False
            if status != "WAITING":
                raise Unexpected(f"queueUpdates pushed {status} while waiting")


def _read_control(loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue) -> None:
    """Stdin lines to the event loop (a thread: stdin is a pipe the loop cannot always watch)."""
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(inbox.put_nowait, json.loads(line))
    loop.call_soon_threadsafe(inbox.put_nowait, {"kind": "exit"})


async def main() -> None:
    config = json.loads(sys.stdin.readline())
    loop = asyncio.get_running_loop()
    control: asyncio.Queue[dict] = asyncio.Queue()
    threading.Thread(target=_read_control, args=(loop, control), daemon=True).start()
    # No timeout of our own, not even to connect (a browser waits for the kernel's SYN retries,
    # minutes): a slow answer is still an answer, and the give-up bounds everything.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=None, connect=None)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as http:
        buyers = [Buyer(config, http, i) for i in config["users"]]
        emit({"kind": "ready"})
        go = await control.get()
        if go["kind"] != "go":
            return
        await asyncio.sleep(max(0.0, go["at"] - time.time()))
        cpu_at_go = time.process_time()
        tasks = {asyncio.create_task(b.run()): b for b in buyers}
        give_up, leave = asyncio.Event(), asyncio.Event()
        loop.call_later(max(0.0, go["deadline_at"] - time.time()), give_up.set)

        async def listen() -> None:
            while True:
                message = await control.get()
                if message["kind"] == "sold_out":
                    loop.call_later(max(0.0, message["at"] + config["grace_s"] - time.time()), give_up.set)
                elif message["kind"] == "exit":
                    give_up.set()
                    leave.set()

        listener = asyncio.create_task(listen())
        stopper = asyncio.create_task(give_up.wait())
        pending = set(tasks)
        while pending and not give_up.is_set():
            _, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(stopper)
        gave_up_at = now_ms()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            record = tasks[task].record
            if record["outcome"] is None:  # (one answered at the last moment keeps its answer)
                record.update(outcome="no_answer", detail={"step": record["step"]}, gaveUpAt=gave_up_at)
        stopper.cancel()
        records = [b.record for b in buyers]
        Path(config["out"]).write_text(json.dumps(records))
        emit({"kind": "done", "cpu_s": round(time.process_time() - cpu_at_go, 3), "wall_s": round(time.time() - go["at"], 3)})
        await leave.wait()  # alive until the harness has read every process's CPU figures
        listener.cancel()


if __name__ == "__main__":
    asyncio.run(main())
