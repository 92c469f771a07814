"""The end of a purchase, grouped (app/batches.py): purchases of an event whose stock was
taken while one group was being finished go together in the next.

Finishing a purchase alone costs eight commands: insert its tickets, complete
the order, complete the buyer's entry, record the session, move the turns on
and read what that decided, admit the next buyer and read who that was. A group
of purchases costs the same eight: the tickets go in one `insert_many`, the
orders and the entries each change in one `update_many`, and the slots they
free give that many turns in one write. In a rush this is most of a purchase's
commands, so the busier the sale the cheaper each purchase.
"""

from __future__ import annotations

from typing import NamedTuple

from app import metrics
from app.errors import DomainError, ErrorCode, fail
from app.orders import codes
from app.orders import repository as repo
from app.orders.models import Order, OrderState, PlannedTicket, TicketStatus, UserTicket
from app.pubsub import channels
from app.queue import service as queue
from app.queue.models import QueueEntry
from app.runtime import Runtime
from app.timeutil import now_ms

# Ticket numbers drawn again at most this often for one order, should they clash.
DRAWS = 5


class Ending(NamedTuple):
    """One purchase to finish: its order (stock taken), whether one of its types ran out
    with it, and the buyer's entry as the purchase read it (None: read it here)."""

    rt: Runtime
    order: Order
    stock_ran_out: bool
    entry: QueueEntry | None


# What a purchase's caller gets: the order, and its tickets if this group issued them
# (None if a concurrent finish did); or the error that ended it.
Finished = tuple[Order, list[UserTicket] | None] | DomainError


async def finish_group(event_id: str, endings: list[Ending]) -> list[Finished]:
    """Issue the planned tickets of a group of orders of one event (idempotent), complete the
    orders, and close their checkouts, handing the slots on."""
    rt = endings[0].rt  # the same for every purchase of a process
    orders = await _issue_tickets(rt, [e.order for e in endings])
    now = now_ms()
    completed = await repo.complete_many(rt.db, orders, now)
    answers: list[Finished] = []
    answered: set[str] = set()  # an order twice in a group (two repairs at once) is issued by the first
    for order in orders:
        if order.id in completed and order.id not in answered:
            answered.add(order.id)
            metrics.PURCHASES.labels("completed").inc()
            metrics.TICKETS_ISSUED.inc(len(order.tickets))
            done = order.model_copy(update={"state": OrderState.COMPLETED, "updated_at_utc": now})
            answers.append((done, [user_ticket(done, t) for t in order.tickets]))
            continue
        stored = await repo.get_order(rt.db, order.id)
        if stored is not None and stored.state is OrderState.FAILED:
            # The repair judged it abandoned and undid it meanwhile: take back what we issued. Its
            # stock stays counted (a safe undercount) until the next recount; giving it back here
            # could race that recount into an oversell.
            await repo.delete_tickets(rt.db, [t.id for t in order.tickets])
            answers.append(fail(ErrorCode.PURCHASE_INTERRUPTED,
                                "the purchase took too long and was undone; nothing was issued"))
        else:
            answers.append((stored or order, None))
    if any(e.stock_ran_out for e in endings):
        # The last ticket closes the queue before these buyers' slots are handed on to nobody's
        # use; the entries are closed after the buyers are answered.
        await queue.refresh_status(rt, event_id=event_id, wait_for_closing=False)
    await queue.complete_admissions(rt, event_id=event_id, completions=[
        queue.Completion(e.order.user_id, e.order.session_id, e.entry, e.order.quantity, e.order.from_hold)
        for e, answer in zip(endings, answers) if not isinstance(answer, DomainError)])
    await rt.broker.publish(channels.event(event_id), {"kind": "inventory"})
    return answers


async def _issue_tickets(rt: Runtime, orders: list[Order]) -> list[Order]:
    """Insert every order's planned tickets in one command; a ticket whose number or code
    clashed with another's is drawn again. The orders, with their tickets as stored."""
    planned = {o.id: list(o.tickets) for o in orders}
    todo = list(orders)
    for _ in range(DRAWS):
        tickets = [(o.id, i, user_ticket(o, t)) for o in todo for i, t in enumerate(planned[o.id])]
        clashes = await repo.insert_tickets(rt.db, [t for _, _, t in tickets])
        if not clashes:
            break
        redrawn: set[str] = set()
        for index in clashes:
            order_id, i, _ = tickets[index]
            planned[order_id][i] = planned[order_id][i].model_copy(
                update={"ticket_number": codes.ticket_number(), "confirmation_code": codes.confirmation_code()})
            redrawn.add(order_id)
        for order_id in redrawn:
            await repo.replace_planned_tickets(rt.db, order_id,
                                               [t.model_dump(by_alias=True, mode="json") for t in planned[order_id]])
        todo = [o for o in todo if o.id in redrawn]
    else:
        raise RuntimeError(f"could not draw unique ticket numbers for orders {[o.id for o in todo]}")
    return [o.model_copy(update={"tickets": planned[o.id]}) for o in orders]


def user_ticket(order: Order, planned: PlannedTicket) -> UserTicket:
    """The ticket an order issues for one of its planned tickets."""
    return UserTicket.model_validate({
        "_id": planned.id, "userId": order.user_id, "eventId": order.event_id,
        "eventTicketId": planned.ticket_type_id, "type": planned.type, "orderId": order.id,
        "ticketNumber": planned.ticket_number, "confirmationCode": planned.confirmation_code,
        "status": TicketStatus.VALID, "purchasedAtUtc": order.created_at_utc,
    })
