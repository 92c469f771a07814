"""cancelEvent: the event, its queue, its checkout sessions and its tickets end together."""

from __future__ import annotations

from app.auth import Viewer
from app.catalog import service as catalog
from app.catalog.models import Event
from app.orders import service as orders
from app.pubsub import channels
from app.queue import service as queue
from app.runtime import Runtime


async def cancel_event(rt: Runtime, *, actor: Viewer, event_id: str) -> Event:
    """Organizer who owns it (or admin): CANCELLED; queue closed, sessions ended, tickets cancelled.

    The event is marked first: from then on no buyer is admitted (the slot
    counter's guard checks the status) and no purchase starts. A purchase
    already past its checks may still finish; the repair cancels such tickets.
    """
    event = await catalog.mark_cancelled(rt, actor=actor, event_id=event_id)
    await queue.close_queue(rt, event_id=event.id, cancelled=True)
    await orders.cancel_event_tickets(rt, event_id=event.id)
    # Tickets already USED at the gate stay USED and keep counting (DESIGN invariant 1).
    types = await catalog.ticket_types_of_event(rt, event_id=event.id)
    counts = await orders.issued_by_type(rt, event_id=event.id)
    await catalog.set_sold_counts(rt, counts=counts, ticket_type_ids=[t.id for t in types])
    await rt.broker.publish(channels.event(event.id), {"kind": "inventory"})
    return event
