"""What the database says after a rush: the invariants of DESIGN section 3, read directly.

`violations` are the guarantees a sale may never break (no oversell, sold ==
issued, unique ticket numbers and codes, one order per buyer, no slot count
above CHECKOUT_LIMIT, no order answered but lost): any of them fails the run.
`findings` are reported, not failed on: FIFO inversions, counters that drift,
entries left WAITING, buyers who never got an answer.
"""

from __future__ import annotations

import time
from collections import Counter

from bson import ObjectId
from pymongo.database import Database

from bench.seed import Sale

# An admission is stamped just before its write; two processes admitting at the same moment
# may stamp in the other order than they write. Inversions within this are that skew.
STAMP_SKEW_MS = 250
IN_FLIGHT = ("PENDING", "RESERVED")


def wait_for_orders_to_settle(db: Database, sale: Sale, timeout: float = 15.0) -> int:
    """Purchases whose client gave up still finish on the server: wait (bounded) until none is in flight."""
    deadline = time.monotonic() + timeout
    while True:
        left = db.orders.count_documents({"eventId": ObjectId(sale.event_id), "state": {"$in": list(IN_FLIGHT)}})
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def wait_for_queue_to_close(db: Database, sale: Sale, timeout: float = 15.0) -> int:
    """Buyers hear CLOSED before the closing has written it (app/queue: `as_seen`): wait
    (bounded) until no entry of the sold-out event is WAITING; how many still are."""
    deadline = time.monotonic() + timeout
    while True:
        left = db.eventQueue.count_documents({"eventId": ObjectId(sale.event_id), "status": "WAITING"})
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def check_sale(db: Database, sale: Sale, records: list[dict], checkout_limit: int, *, holds: bool = False) -> dict:
    """Violations (fail the run), findings (reported) and the counts they come from. `holds`:
    every checkout held its ticket, so no admitted buyer may be refused."""
    violations: list[str] = []
    findings: list[str] = []
    event_id = ObjectId(sale.event_id)
    event = db.events.find_one({"_id": event_id})
    types = list(db.eventTickets.find({"eventId": event_id}))
    tickets = list(db.userTickets.find({"eventId": event_id}))
    orders = list(db.orders.find({"eventId": event_id}))
    entries = list(db.eventQueue.find({"eventId": event_id}))

    issued = Counter(str(t["eventTicketId"]) for t in tickets if t["status"] != "CANCELLED")
    for t in types:
        sold, total, got = t["quantitySold"], t["quantityTotal"], issued[str(t["_id"])]
        if got > total:
            violations.append(f"oversold {t['type']}: {got} tickets issued of {total}")
        if not 0 <= sold <= total:
            violations.append(f"{t['type']}: quantitySold {sold} outside 0..quantityTotal {total} ({got} issued)")
        if sold != got:
            violations.append(f"{t['type']}: quantitySold {sold} but {got} issued, non-cancelled tickets")
    if holds:
        lost = [r["user"] for r in records if r.get("outcome") == "refused"
                and (r.get("detail") or {}).get("step") in ("startCheckout", "purchaseTickets")]
        if lost:
            violations.append(f"admitted buyers who lost their ticket although checkouts hold: {lost[:5]} ({len(lost)})")
        if any(t.get("quantityHeld", 0) for t in types):
            violations.append(f"stock still held after the sale: {[t.get('quantityHeld', 0) for t in types]}")
    sold_total = sum(t["quantitySold"] for t in types)
    if sum(issued.values()) < sale.tickets:
        findings.append(f"not sold out: {sum(issued.values())} of {sale.tickets} tickets issued")

    for key in ("ticketNumber", "confirmationCode"):
        dupes = [v for v, n in Counter(t[key] for t in tickets).items() if n > 1]
        if dupes:
            violations.append(f"duplicate {key}: {dupes[:5]}")
    completed = [o for o in orders if o["state"] == "COMPLETED"]
    twice = [u for u, n in Counter(o["userId"] for o in completed).items() if n > 1]
    if twice:
        violations.append(f"buyers with two orders: {twice[:5]}")
    answered = {r["order"]["id"] for r in records if r["outcome"] == "order"}
    lost = answered - {str(o["_id"]) for o in completed}
    if lost:
        violations.append(f"orders answered to a buyer but not COMPLETED in the database: {sorted(lost)[:5]}")
    unanswered = len(completed) - len(answered & {str(o["_id"]) for o in completed})
    if unanswered:
        findings.append(f"{unanswered} orders completed whose buyer never saw the answer")
    in_flight = Counter(o["state"] for o in orders if o["state"] in IN_FLIGHT)
    if in_flight:
        findings.append(f"orders left in flight: {dict(in_flight)}")

    statuses = Counter(e["status"] for e in entries)
    # An ACTIVE session lives on its ADMITTED entry (app/checkout/service.py).
    sessions = db.eventQueue.count_documents({"eventId": event_id, "status": "ADMITTED", "sessionId": {"$ne": None}})
    slots = event["activeCheckouts"]
    for what, n in (("activeCheckouts", slots), ("ADMITTED entries", statuses["ADMITTED"]), ("ACTIVE sessions", sessions)):
        if n > checkout_limit:
            violations.append(f"{what} {n} above CHECKOUT_LIMIT {checkout_limit}")
    if slots != statuses["ADMITTED"]:
        findings.append(f"activeCheckouts {slots} but {statuses['ADMITTED']} ADMITTED entries")
    if statuses["WAITING"]:
        findings.append(f"{statuses['WAITING']} entries still WAITING after the sale")
    inversions = admission_inversions(entries, records)
    if inversions:
        findings.append(f"{len(inversions)} admissions out of seq order, e.g. {inversions[0]}")
    no_answer = sum(r["outcome"] == "no_answer" for r in records)
    if no_answer:
        findings.append(f"{no_answer} buyers got no answer (stuck)")
    return {
        "violations": violations, "findings": findings,
        "counts": {
            "quantity_sold": sold_total, "tickets_issued": sum(issued.values()), "orders_completed": len(completed),
            "orders_failed": sum(o["state"] == "FAILED" for o in orders), "entries": dict(statuses),
            "active_checkouts": slots, "active_sessions": sessions, "fifo_inversions": len(inversions),
            "event_status": event.get("status"),
        },
    }


def admission_inversions(entries: list[dict], records: list[dict]) -> list[str]:
    """Invariant 3 by the stored times: if b (lower seq) was in the queue when a was admitted,
    b was admitted no later (within STAMP_SKEW_MS), or had already left; same-batch ties pass.

    A b never admitted and never ended waits forever, so any later admission past it counts.
    """
    answered = {r["user"]: r["at"].get("joinAnswered") for r in records}
    admitted = sorted((e for e in entries if e.get("admittedAtUtc") is not None), key=lambda e: e["seq"])
    found = []
    for a in admitted:
        for b in entries:
            if b["seq"] >= a["seq"]:
                continue
            joined = answered.get(b["userId"])
            if joined is None or joined >= a["admittedAtUtc"]:
                continue  # b's joinQueue had not answered yet: it may not have been in the queue
            b_admitted = b.get("admittedAtUtc")
            waited_until = b_admitted if b_admitted is not None else b.get("endedAtUtc", float("inf"))
            if waited_until > a["admittedAtUtc"] + STAMP_SKEW_MS:
                found.append(f"seq {a['seq']} admitted at {a['admittedAtUtc']} while seq {b['seq']} waited until {waited_until}")
    return found
