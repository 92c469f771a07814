"""Checkout holds: the stock a buyer names as their checkout starts is taken then, and kept
for the session, so the purchase cannot fail for stock and nobody admitted later can take it.

The stock is taken with the type's guarded counter (never oversold) and also
counted in its quantityHeld. Where it lives, and what moves it:
- the hold is written on the buyer's queue entry (`heldItems`, `holdState`)
  in the same guarded write that starts the checkout; if that write loses
  (the entry ended meanwhile), the stock is given back at once;
- the session's purchase moves it HELD -> BOUGHT in one guarded write of the
  entry, then off quantityHeld (`sell`): the stock stays sold, as the order's;
- a checkout that ends unused (expiry, leave) moves it HELD -> RETURNED in the
  guarded write that ends the entry, and only then gives it back (`give_back`),
  so it comes back exactly once.
Beside the stock, the event's claimableStock (app/catalog/turns.py) counts what
admissions may still claim: every admitted buyer has at least one ticket to hold.
"""

from __future__ import annotations

from typing import NamedTuple

from app.catalog import service as catalog
from app.catalog.models import HELD, OFFERED, EventTicket
from app.errors import DomainError, ErrorCode, Problem
from app.pubsub import channels
from app.queue import repository as repo
from app.queue.models import HeldItem, QueueEntry
from app.runtime import Runtime


class Hold(NamedTuple):
    """What a checkout is to hold, checked against the sale's rules: its items, their types as
    read, and the request's field that named them (for errors)."""

    items: list[HeldItem]
    types: dict[str, EventTicket]
    field: str = "items"
    offered: bool = False  # a waitlist offer's (counted in quantityOffered too)

    def same_as(self, items: list[HeldItem] | None) -> bool:
        return same(self.items, items)


def same(these: list[HeldItem] | None, those: list[HeldItem] | None) -> bool:
    """The same tickets, whatever their order?"""
    return sorted(these or (), key=lambda i: i.ticket_type_id) == sorted(those or (), key=lambda i: i.ticket_type_id)


async def take(rt: Runtime, event_id: str, hold: Hold) -> None:
    """Take every item's stock as held, or none of it: SOLD_OUT or INSUFFICIENT_INVENTORY
    (at `field`.N.quantity, N the item's index) for the first type short."""
    items, field = hold.items, hold.field
    taken: list[HeldItem] = []
    for item in sorted(items, key=lambda i: i.ticket_type_id):  # one order for all: no cycles of waits
        request = catalog.StockTake(rt.db, item.quantity, hold.types[item.ticket_type_id].quantity_total,
                                    _parts(hold.offered))
        if await rt.stock_takes.submit(item.ticket_type_id, request, catalog.reserve_together) is None:
            await give_back(rt, event_id, taken, offered=hold.offered)
            fresh = (await catalog.ticket_types_by_id(rt, ids=[item.ticket_type_id]))[item.ticket_type_id]
            raise DomainError(_shortage(fresh, f"{field}.{items.index(item)}.quantity"))
        taken.append(item)
    await rt.broker.publish(channels.event(event_id), {"kind": "inventory"})


async def give_back(rt: Runtime, event_id: str, items: list[HeldItem], *, offered: bool = False) -> None:
    """Held stock comes back to the sale (its checkout ended unused, or never started; `offered`:
    it was a waitlist offer's)."""
    for item in items:
        await catalog.release_inventory(rt, ticket_type_id=item.ticket_type_id, quantity=item.quantity,
                                        parts=_parts(offered))
    if items:
        await rt.broker.publish(channels.event(event_id), {"kind": "inventory"})


class Buy(NamedTuple):
    """One purchase's claim on its checkout's hold: the entry as the purchase read it, the
    order, and the quantityTotal of each type held."""

    rt: Runtime
    entry: QueueEntry
    order_id: str
    totals: dict[str, int]


async def buy_together(event_id: str, group: list[Buy]) -> list[bool | None]:
    """The holds of a group of purchases of one event go to their orders (app/batches.py): one
    write of the entries, then one of each type's quantityHeld. For each, whether a type may
    have sold out with it, or None if its checkout ended (and gave the hold back) first."""
    rt = group[0].rt
    won = await repo.buy_holds(rt.db, [(b.entry, b.order_id) for b in group])
    bought: dict[str, int] = {}
    offered: dict[str, int] = {}
    totals: dict[str, int] = {}
    for b, ok in zip(group, won):
        for item in b.entry.held_items or () if ok else ():
            bought[item.ticket_type_id] = bought.get(item.ticket_type_id, 0) + item.quantity
            if b.entry.offer_of is not None:
                offered[item.ticket_type_id] = offered.get(item.ticket_type_id, 0) + item.quantity
            totals[item.ticket_type_id] = b.totals[item.ticket_type_id]
    ran_out = {t: await catalog.sell_held(rt, ticket_type_id=t, quantity=q, total=totals[t], offered=offered.get(t, 0))
               for t, q in sorted(bought.items())}
    if bought:
        await rt.broker.publish(channels.event(event_id), {"kind": "inventory"})
    return [any(ran_out[i.ticket_type_id] for i in b.entry.held_items or ()) if ok else None for b, ok in zip(group, won)]


def _parts(offered: bool) -> tuple[str, ...]:
    return (HELD, OFFERED) if offered else (HELD,)


def total(items: list[HeldItem] | None) -> int:
    return sum(i.quantity for i in items or ())


def _shortage(ticket: EventTicket, field: str) -> Problem:
    if ticket.quantity_remaining == 0:
        return Problem(ErrorCode.SOLD_OUT, f"{ticket.name} is sold out or held in other checkouts", field)
    return Problem(ErrorCode.INSUFFICIENT_INVENTORY,
                   f"only {ticket.quantity_remaining} {ticket.name} left to hold; nothing was held", field)
