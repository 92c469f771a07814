"""Checkouts a crash left open behind a completed purchase (issue 10, finding 8).

A purchase's end completes its order, then completes its buyer's entry (which
holds the ACTIVE session), records the session and hands the slot on
(app/orders/endings.py). A crash between those writes leaves the order
COMPLETED and the entry ADMITTED with the very session that bought: the buyer
keeps a slot, and could buy again in it, until the session expires. The repair
ends such a checkout as the purchase would have, through the same guarded write
(`queue.complete_admissions`): of the repair and a purchase's own ending running
at the same moment, one completes the entry and frees its slot, never both.
"""

from __future__ import annotations

import logging

from app import metrics
from app.orders import service as orders
from app.queue import service as queue
from app.runtime import Runtime

log = logging.getLogger("app.repair")


async def end_orphaned_checkouts(rt: Runtime, *, event_id: str, completed_before: int) -> int:
    """End the event's open checkouts whose purchase COMPLETED before `completed_before` (a live
    ending is left to its own process); how many this call ended."""
    open_checkouts = await queue.open_checkouts(rt, event_id=event_id)
    bought = await orders.sessions_that_bought(
        rt, sessions=[(e.user_id, e.session_id) for e in open_checkouts if e.session_id],
        completed_before=completed_before,
    )
    orphans = [e for e in open_checkouts if e.session_id in bought]
    if not orphans:
        return 0
    # The crash may also have cut the ending off before it stored a sell-out: store it first, so
    # that no turn is handed to a buyer for a ticket that no longer exists.
    await queue.refresh_status(rt, event_id=event_id)
    ended = await queue.complete_admissions(rt, event_id=event_id, completions=[
        queue.Completion(e.user_id, e.session_id, e) for e in orphans if e.session_id])
    if ended:
        metrics.REPAIRS.labels("checkout_ended").inc(ended)
        log.warning("repair: ended %d checkouts of event %s whose purchase had completed", ended, event_id)
    return ended
