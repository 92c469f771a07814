"""Repair after a crash (DESIGN invariant 7): finish or undo half-done orders, end the checkouts
of completed purchases (app/flows/orphans.py), recount counters.

Run it any time, as often as you like, from any number of processes: every
step is a guarded write, so running it twice or twice at once changes
nothing more. The workers' `repair` cron runs it every minute; tests call it directly.

Counters are recounted from the documents they count and corrected only if
no write raced the recount (the counter still holds the value read first):
- quantitySold of a type = its issued, non-cancelled tickets + the items of
  orders still in flight (PENDING/RESERVED) + what live checkouts hold (a
  hold being bought is counted once, by its order). Counting in-flight orders
  as sold errs towards selling less, never more.
- quantityHeld of a type = what live checkouts hold (app/queue/holds.py), and
  quantityOffered = what of it waitlist offers hold.
- quantityTentative of a type = 0 once no order is in flight (a purchase that
  died while taking its types left it; see app/orders/stock.py).
- activeCheckouts of an event = its ADMITTED entries, only if both numbers
  hold still for a short settle time (a turn given to a join still writing
  its entry holds a slot for a moment before the entry is ADMITTED); and its
  claimableStock = unsold, unheld stock less a ticket for each buyer whose
  turn came and who holds nothing, with the same settle time.
- seqs that no entry holds (a join died between taking its seq and writing
  its entry) are skipped, with the same settle time.
The cron recounts an event only once its sale has been quiet for the order
grace period (30 s): during a rush, a step's two writes can be seconds apart,
and a recount between them would break the counters it means to fix.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from app import metrics
from app.catalog import service as catalog
from app.catalog.models import HELD, OFFERED, EventStatus
from app.flows.orphans import end_orphaned_checkouts
from app.orders import service as orders
from app.queue import service as queue
from app.waitlist import service as waitlist
from app.runtime import Runtime
from app.timeutil import now_ms

log = logging.getLogger("app.repair")

# An order untouched for this long is taken as abandoned by a crashed process.
ORDER_GRACE_MS = 30_000
# Counters are recounted for sales active this recently: a sale at rest keeps the counters its
# last recount left.
ACTIVE_WITHIN_MS = 24 * 3600_000


@dataclass
class RepairReport:
    orders_finished: int = 0
    orders_undone: int = 0
    checkouts_ended: int = 0
    corrections: list[str] = field(default_factory=list)


async def repair(rt: Runtime, *, grace_ms: int = ORDER_GRACE_MS, settle_seconds: float = 1.0) -> RepairReport:
    """Everything: stale orders first, then the counters of every event whose sale was active
    in the last day (or holds a stale order) and is quiet now; never the thousands at rest."""
    stale = await orders.stale_orders(rt, untouched_since_ms=now_ms() - grace_ms)
    active = await catalog.events_with_queue_activity(rt, since=now_ms() - ACTIVE_WITHIN_MS)
    event_ids = sorted(set(active) | {o.event_id for o in stale})
    # Judged before this run's own writes (finishing an order frees a slot) can make a sale look busy.
    quiet_before = now_ms() - grace_ms
    quiet = {e for e in event_ids if ((await catalog.get_event(rt, event_id=e)).queue_activity_at_utc or 0) <= quiet_before}
    report = await repair_orders(rt, grace_ms=grace_ms)
    ended_before = now_ms() - grace_ms
    for event_id in event_ids:  # busy or quiet: each is one guarded write, safe beside a live ending
        report.checkouts_ended += await end_orphaned_checkouts(rt, event_id=event_id, completed_before=ended_before)
    for event_id in event_ids:
        if event_id in quiet:
            report.corrections += await repair_counters(rt, event_id=event_id, settle_seconds=settle_seconds)
    return report


async def repair_orders(rt: Runtime, *, grace_ms: int = ORDER_GRACE_MS) -> RepairReport:
    """Orders whose stock was taken (tickets in, or RESERVED) are finished; the others undone."""
    report = RepairReport()
    for order in await orders.stale_orders(rt, untouched_since_ms=now_ms() - grace_ms):
        if await orders.stock_was_taken(rt, order=order):
            _, issued_here = await orders.finish_order(rt, order)
            if issued_here is not None:  # a repair running beside us may have finished it
                report.orders_finished += 1
                metrics.REPAIRS.labels("order_finished").inc()
                log.warning("repair: finished order %s", order.id)
        elif await orders.undo_abandoned_order(rt, order=order):
            report.orders_undone += 1
            metrics.REPAIRS.labels("order_undone").inc()
            log.warning("repair: undid order %s", order.id)
    return report


async def repair_counters(rt: Runtime, *, event_id: str, settle_seconds: float = 1.0) -> list[str]:
    """Recount one event's quantitySold and activeCheckouts, and skip lost seqs; the corrections made.

    Run only on a quiet sale (see `repair`): a busy sale's counters are exact
    by construction, while a recount taken between two writes of one step (a
    slot counted, its entry not yet written; an order written, its stock not
    yet taken) would "correct" them wrongly.
    """
    corrections: list[str] = []
    event = await catalog.get_event(rt, event_id=event_id)
    if event.status is EventStatus.CANCELLED:
        await orders.cancel_event_tickets(rt, event_id=event_id)  # a purchase that finished after the cancel
    types = await catalog.ticket_types_of_event(rt, event_id=event_id)  # the counters, read first
    in_flight = await orders.orders_in_flight(rt, event_id=event_id)
    issued = await orders.issued_by_type(rt, event_id=event_id, excluding_orders=[o.id for o in in_flight])
    ordered = Counter()
    for order in in_flight:
        for item in order.items:
            ordered[item.ticket_type_id] += item.quantity
    # Read after the orders: a hold bought meanwhile is then counted by neither, erring towards less.
    buying = {o.session_id for o in in_flight if o.from_hold}
    held, offered = Counter(), Counter()
    for entry in await queue.live_holds(rt, event_id=event_id):
        for item in entry.held_items or ():
            held[item.ticket_type_id] += item.quantity
            if entry.offer_of is not None:
                offered[item.ticket_type_id] += item.quantity
            if entry.session_id not in buying:
                ordered[item.ticket_type_id] += item.quantity
    for ticket in types:
        expected = issued.get(ticket.id, 0) + ordered[ticket.id]
        if expected != ticket.quantity_sold and await catalog.correct_quantity_sold(
            rt, ticket_type_id=ticket.id, seen=ticket.quantity_sold, value=expected,
        ):
            corrections.append(f"quantitySold of {ticket.id}: {ticket.quantity_sold} -> {expected}")
            metrics.REPAIRS.labels("quantity_sold").inc()
        for part, kind, seen, value in ((HELD, "quantity_held", ticket.quantity_held, held[ticket.id]),
                                        (OFFERED, "quantity_offered", ticket.quantity_offered, offered[ticket.id])):
            if value != seen and await catalog.correct_part_of_sold(
                rt, ticket_type_id=ticket.id, part=part, seen=seen, value=value,
            ):
                corrections.append(f"{part} of {ticket.id}: {seen} -> {value}")
                metrics.REPAIRS.labels(kind).inc()
        # Tentative holds last while an order takes its types; with none in flight, none is held.
        if ticket.quantity_tentative and not in_flight and await catalog.correct_quantity_tentative(
            rt, ticket_type_id=ticket.id, seen=ticket.quantity_tentative, value=0,
        ):
            corrections.append(f"quantityTentative of {ticket.id}: {ticket.quantity_tentative} -> 0")
            metrics.REPAIRS.labels("quantity_tentative").inc()

    slots = await queue.recount_slots(rt, event_id=event_id, settle_seconds=settle_seconds)
    if slots is not None:
        corrections.append(f"activeCheckouts of {event_id}: {slots[0]} -> {slots[1]}")
        metrics.REPAIRS.labels("active_checkouts").inc()
    if event.status is not EventStatus.CANCELLED:
        unclaimed = sum(t.quantity_total - issued.get(t.id, 0) - ordered[t.id] for t in types)
        claimable = await queue.recount_claimable(rt, event_id=event_id, unclaimed=unclaimed, settle_seconds=settle_seconds)
        if claimable is not None:
            corrections.append(f"claimableStock of {event_id}: {claimable[0]} -> {claimable[1]}")
            metrics.REPAIRS.labels("claimable_stock").inc()
    lost = await queue.skip_lost_seqs(rt, event_id=event_id, settle_seconds=settle_seconds)
    if lost:
        corrections.append(f"seqs of {event_id} whose join never wrote its entry, skipped: {lost}")
        metrics.REPAIRS.labels("lost_seqs").inc()
    # Stock given back goes to the waitlist first, then changes the sale status: stored now, not
    # at the next cron (offered stock keeps a sold-out event sold out).
    await waitlist.offer_returned_stock(rt, event_id=event_id)
    await queue.refresh_status(rt, event_id=event_id)
    for line in corrections:
        log.warning("repair: %s", line)
    return corrections
