"""Caps of tickets per buyer across all orders (issue 10): each buyer's tally of an event.

A buyer who loops join -> checkout -> purchase, or sends two purchases at once,
must not hold more than the event's cap (and a type's own cap). A check that
reads what the buyer holds and then buys lets two purchases racing pass it
together; so, like the stock, the cap is a guarded counter: one document per
event and buyer (`buyerTallies`) counts what their orders hold or may hold, and
each purchase takes its share with one guarded update, after its order is
written and before its stock is taken. A share is given back, once (the tally
lists the orders it counts), when the order fails or the repair undoes it.

Takes of one event arriving together go in one command, and so do give-backs
(app/batches.py): the cap costs a rush one command per group of purchases.
"""

from __future__ import annotations

from typing import NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from app.catalog.models import Event, EventTicket
from app.errors import ErrorCode, Problem
from app.orders import repository as repo
from app.orders.models import Claim, Order, Tally
from app.runtime import Runtime

# Rounds of a take whose tally moved under it (created, or given back to, by another at the
# same moment) before it is refused: each such round needs another process's write in between.
ROUNDS = 4


class TypeCap(NamedTuple):
    cap: int
    name: str


class Caps(NamedTuple):
    """What one buyer may hold of an event: in all, and of each type that has a cap of its own."""

    total: int
    by_type: dict[str, TypeCap]


class Take(NamedTuple):
    db: AsyncDatabase
    order: Order
    caps: Caps


def caps_of(event: Event, types: list[EventTicket], most_per_purchase: int) -> Caps:
    """The caps in force for the event (`types`: all its ticket types)."""
    by_type = {t.id: TypeCap(t.max_per_buyer, t.name) for t in types if t.max_per_buyer is not None}
    return Caps(event.buyer_cap(types, most_per_purchase), by_type)


def tally_id(event_id: str, user_id: str) -> str:
    return f"{event_id}:{user_id}"


async def take(rt: Runtime, *, order: Order, caps: Caps) -> Problem | None:
    """Count the order in its buyer's tally if the caps leave room for it; else the refusal
    (PURCHASE_LIMIT_EXCEEDED, saying how many the buyer may still buy) and nothing counted."""
    return await rt.tally_takes.submit(order.event_id, Take(rt.db, order, caps), take_together)


async def give_back(rt: Runtime, *, order: Order) -> None:
    """The order failed or was undone: its tickets no longer count (a no-op if they never did)."""
    await rt.tally_returns.submit(order.event_id, (rt.db, _claim(order, None)), _give_back_together)


async def take_together(event_id: str, takes: list[Take]) -> list[Problem | None]:
    """Takes of one event that arrived together (app/batches.py): one guarded update each, in
    one command; a refused one is judged on its tally as read after the refusal."""
    db = takes[0].db
    results: list[Problem | None] = [None] * len(takes)
    trying = list(range(len(takes)))
    for _ in range(ROUNDS):
        if not trying:
            return results
        taken = await repo.take_tallies(db, [_claim(takes[i].order, takes[i].caps) for i in trying])
        missed = [i for i, ok in zip(trying, taken, strict=True) if not ok]
        if not missed:
            return results
        held = await repo.read_tallies(db, sorted({tally_id(takes[i].order.event_id, takes[i].order.user_id) for i in missed}))
        trying = []
        for i in missed:
            order = takes[i].order
            tally = held.get(tally_id(order.event_id, order.user_id)) or Tally(_id="")
            if order.id in tally.orders:
                continue  # counted already (this very order's take ran twice)
            results[i] = over_cap(order, takes[i].caps, tally)
            if results[i] is None:
                trying.append(i)  # room after all: the tally moved between the update and the read
    for i in trying:
        results[i] = Problem(ErrorCode.PURCHASE_LIMIT_EXCEEDED,
                             "your other purchases for this event are still being counted; try again in a moment", "input.items")
    return results


def over_cap(order: Order, caps: Caps, tally: Tally) -> Problem | None:
    """Why the order does not fit beside what the tally holds, if it does not."""
    wanted = sum(i.quantity for i in order.items)
    if tally.total + wanted > caps.total:
        left = max(0, caps.total - tally.total)
        return Problem(ErrorCode.PURCHASE_LIMIT_EXCEEDED,
                       f"at most {caps.total} tickets per buyer for this event: you may buy {left} more", "input.items")
    for index, item in enumerate(order.items):
        capped = caps.by_type.get(item.ticket_type_id)
        held = tally.types.get(item.ticket_type_id, 0)
        if capped is not None and held + item.quantity > capped.cap:
            left = max(0, capped.cap - held)
            message = f"at most {capped.cap} {capped.name} per buyer: you may buy {left} more"
            return Problem(ErrorCode.PURCHASE_LIMIT_EXCEEDED, message, f"input.items.{index}.quantity")
    return None


def _claim(order: Order, caps: Caps | None) -> Claim:
    """The order's share of its tally; with `caps`, the room each count needs (for a take)."""
    counts = {i.ticket_type_id: i.quantity for i in order.items}
    wanted = sum(counts.values())
    room = caps.total - wanted if caps else 0
    type_rooms = {t: caps.by_type[t].cap - n for t, n in counts.items() if t in caps.by_type} if caps else {}
    return Claim(tally_id(order.event_id, order.user_id), order.event_id, order.user_id, order.id, counts, room, type_rooms)


async def _give_back_together(event_id: str, returns: list[tuple[AsyncDatabase, Claim]]) -> list[None]:
    await repo.give_back_tallies(returns[0][0], [claim for _, claim in returns])
    return [None] * len(returns)
