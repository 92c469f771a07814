"""The jobs. Each calls one domain service; running one twice, or on two workers at once, is safe."""

from __future__ import annotations

import logging
from typing import Any

from app import metrics
from app.catalog import service as catalog
from app.queue import service as queue
from app.runtime import Runtime
from app.timeutil import now_ms
from app.waitlist import service as waitlist
from app.flows import repair as recovery

log = logging.getLogger("workers.jobs")

Ctx = dict[str, Any]

# How far back the status cron looks for sale windows that opened or closed (it runs every minute).
WINDOW_LOOKBACK_MS = 5 * 60_000


def _rt(ctx: Ctx) -> Runtime:
    return ctx["rt"]


async def expire_due_entries(ctx: Ctx, event_id: str) -> int:
    """Deferred to the expiresAt of a group of the event's entries (or sessions): expire every
    entry of the event that is due by now; how many this run expired."""
    expired = await queue.expire_every_due_entry(_rt(ctx), event_id=event_id)
    await waitlist.offer_returned_stock(_rt(ctx), event_id=event_id)  # a lapsed offer goes to the next buyer
    metrics.JOB_RUNS.labels("expire_due_entries", "expired" if expired else "nothing").inc()
    return expired


async def sweep_expired(ctx: Ctx) -> int:
    """Cron backstop, every minute: whatever a lost deferred job missed."""
    expired = await queue.sweep(_rt(ctx))
    await waitlist.offer_where_stock_returned(_rt(ctx))
    metrics.JOB_RUNS.labels("sweep_expired", "ok").inc()
    return expired


async def refresh_event_status(ctx: Ctx, event_id: str) -> str:
    """Deferred to a sale window's opening or closing: UPCOMING -> ON_SALE -> SOLD_OUT..."""
    status = await queue.refresh_status(_rt(ctx), event_id=event_id)
    metrics.JOB_RUNS.labels("refresh_event_status", "ok").inc()
    return status.value


async def refresh_sale_statuses(ctx: Ctx) -> int:
    """Cron backstop, every minute: the stored status of every event whose sale window opened
    or closed, or whose queue moved, in the last WINDOW_LOOKBACK_MS (a deferred refresh that was
    lost, a purchase that died before storing a sell-out); never of the thousands at rest."""
    rt = _rt(ctx)
    changed = 0
    now = now_ms()
    since = now - WINDOW_LOOKBACK_MS
    edges = await catalog.events_with_window_edges(rt, since=since, until=now)
    for event_id in sorted(set(edges) | set(await catalog.events_with_queue_activity(rt, since=since))):
        before = await catalog.get_event(rt, event_id=event_id)
        if await queue.refresh_status(rt, event_id=event_id) is not before.status:
            changed += 1
    metrics.JOB_RUNS.labels("refresh_sale_statuses", "ok").inc()
    return changed


async def repair(ctx: Ctx) -> dict:
    """Cron, every minute: finish or undo stale orders, end completed purchases' checkouts, recount the counters."""
    report = await recovery.repair(_rt(ctx))
    metrics.JOB_RUNS.labels("repair", "ok").inc()
    return {"finished": report.orders_finished, "undone": report.orders_undone,
            "checkouts_ended": report.checkouts_ended, "corrections": report.corrections}
