"""Taking an order's stock: every type it asks for, or none, and never a refusal on stock
that is only held for a moment.

Each type's stock is its own guarded counter, so an order of several types takes
them one after the other. While it takes the later ones, the earlier ones are held
*tentatively*: if a later one is refused they come back. Others who came for that
stock alone must not be refused because of such a hold. Before, in a rush where
one type sold out, orders of both types held the other type for a moment, turned
away the buyers of that type alone, and then gave it back: the sale ended with
tickets unsold (11 of 80 in one CI run). So a tentative take is also counted in
the type's quantityTentative, and a buyer refused while some stock is tentative
looks again for a short while before the refusal stands.

Types are taken in id order, the same for every order, so waits never form a
cycle: an order waits only on holders that took a lower id first.
"""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

from app import metrics
from app.catalog import service as catalog
from app.catalog.models import TENTATIVE, EventTicket
from app.errors import DomainError, ErrorCode, Problem
from app.orders import repository as repo
from app.orders.models import Failure, Order, OrderItem, OrderState
from app.pubsub import channels
from app.runtime import Runtime
from app.timeutil import now_ms

# How long a refused take keeps looking while tentative holds may come back: a hold lasts
# the holder's next guarded write, tens of milliseconds, or a few hundred under load.
TENTATIVE_WAIT_SECONDS = 1.0
FIRST_LOOK_SECONDS = 0.02


class Take(NamedTuple):
    """A take's outcome: whether it took the type's last tickets, or None with the type as
    read after the refusal."""

    took_last: bool | None
    refused_by: EventTicket | None = None


async def reserve_all(rt: Runtime, order: Order, types: dict[str, EventTicket]) -> bool:
    """Take every item's stock, or none of it (the order then FAILS with the reason); whether
    any of the types ran out with it (only then can the event's status change)."""
    items = sorted(order.items, key=lambda i: i.ticket_type_id)
    taken: list[OrderItem] = []
    ran_out = False
    for position, item in enumerate(items):
        tentative = position < len(items) - 1  # the last type taken completes the order
        take = await _take(rt, item, types[item.ticket_type_id].quantity_total, tentative=tentative)
        if take.took_last is None:
            await _give_back(rt, taken)
            await _refuse(rt, order, item, take.refused_by, gave_back=bool(taken))
        taken.append(item)
        ran_out = ran_out or take.took_last
    await asyncio.gather(*(
        catalog.confirm_tentative(rt, ticket_type_id=i.ticket_type_id, quantity=i.quantity) for i in taken[:-1]
    ))
    await rt.broker.publish(channels.event(order.event_id), {"kind": "inventory"})
    return ran_out


async def confirmed_shortage(rt: Runtime, order: Order, types: dict[str, EventTicket]) -> Problem | None:
    """The shortage that refuses the order, if the sale view shows one and the documents,
    read now, confirm it; else None, and the guarded counters decide.

    After a sell-out most purchases still in flight are refused: this costs them
    one read instead of the order's PENDING write, the counters' two guarded
    writes and the FAILED write. The view alone never refuses: it can show too
    little for a second after stock was given back. Nor does a read that shows
    tentative stock that may come back.
    """
    short = {i.ticket_type_id for i in order.items if types[i.ticket_type_id].quantity_remaining < i.quantity}
    if not short:
        return None
    fresh = await catalog.ticket_types_by_id(rt, ids=sorted(short))
    for index, item in enumerate(order.items):
        ticket = fresh.get(item.ticket_type_id)
        if ticket is not None and ticket.quantity_remaining < item.quantity and not ticket.may_free(item.quantity):
            return shortage(index, ticket)
    return None


def count_refusal(problem: Problem) -> None:
    metrics.PURCHASES.labels("failed").inc()
    metrics.SOLD_OUTS.labels(problem.code.value).inc()


def shortage(index: int, ticket: EventTicket) -> Problem:
    """SOLD_OUT, or INSUFFICIENT_INVENTORY with what is left, for item `index` of the request."""
    field = f"input.items.{index}.quantity"
    if ticket.quantity_remaining == 0:
        return Problem(ErrorCode.SOLD_OUT, f"{ticket.name} is sold out", field)
    return Problem(ErrorCode.INSUFFICIENT_INVENTORY, f"only {ticket.quantity_remaining} {ticket.name} left; nothing was bought", field)


async def _take(rt: Runtime, item: OrderItem, total: int, *, tentative: bool) -> Take:
    """One item's guarded take, together with the other takes of its type in flight (one
    write if all fit); refused only once no tentative hold could make room for it."""
    request = catalog.StockTake(rt.db, item.quantity, total, (TENTATIVE,) if tentative else ())
    deadline, pause = time.monotonic() + TENTATIVE_WAIT_SECONDS, FIRST_LOOK_SECONDS
    while True:
        took_last = await rt.stock_takes.submit(item.ticket_type_id, request, catalog.reserve_together)
        if took_last is not None:
            return Take(took_last)
        fresh = (await catalog.ticket_types_by_id(rt, ids=[item.ticket_type_id]))[item.ticket_type_id]
        room = fresh.quantity_remaining >= item.quantity or fresh.may_free(item.quantity)
        if not room or time.monotonic() + pause > deadline:
            return Take(None, fresh)
        await asyncio.sleep(pause)
        pause *= 2


async def _give_back(rt: Runtime, taken: list[OrderItem]) -> None:
    # Everything taken before the refused type was taken tentatively.
    for item in taken:
        await catalog.release_inventory(rt, ticket_type_id=item.ticket_type_id, quantity=item.quantity, parts=(TENTATIVE,))


async def _refuse(rt: Runtime, order: Order, item: OrderItem, ticket: EventTicket, *, gave_back: bool) -> None:
    """The order FAILS for `item`'s shortage (`ticket`: its type as read), stored with its reason; raises it."""
    index = next(i for i, it in enumerate(order.items) if it.ticket_type_id == item.ticket_type_id)
    problem = shortage(index, ticket)
    failure = Failure(code=problem.code.value, message=problem.message, field=problem.field)
    await repo.move(rt.db, order, OrderState.FAILED, now_ms(), {"failure": failure.model_dump()})
    if gave_back:
        await rt.broker.publish(channels.event(order.event_id), {"kind": "inventory"})
    count_refusal(problem)
    raise DomainError(problem)
