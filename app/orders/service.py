"""M5 purchaseTickets, Q4 myTickets: all-or-nothing orders that never oversell.

The order of steps is what makes a purchase safe:
1. a retry with a known idempotency key is answered from the stored order,
   before anything else (even after the checkout session has completed);
2. the buyer's own ACTIVE, unexpired session is required;
3. the order is written PENDING, with the tickets it will issue (or FAILED at
   once, if the sale view shows a type short and a read of it confirms that);
4. the order is counted in the buyer's tally of the event, if the buyer's cap
   leaves room for it, else it FAILS (app/orders/tallies.py); its count is
   given back if a later step fails;
5. each item's stock is taken with the guarded counter; if one is short,
   the ones taken are given back and the order FAILS (nothing issued):
   see app/orders/stock.py. A checkout that holds stock (its start named the
   items, app/queue/holds.py) buys exactly what it holds instead: the hold
   moves to the order in one guarded write, which fails only if the checkout
   ended first;
6. the planned tickets are inserted, the order COMPLETES and the checkout
   ends, handing the slot to the next buyer.
A crash between steps leaves an order PENDING: `repair` finishes it if its
tickets are in, and undoes it (its tally given back) if not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import NamedTuple

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from app import metrics
from app.auth import Viewer, require_user
from app.catalog import service as catalog
from app.catalog.models import Event, EventStatus, EventTicket
from app.checkout import service as checkout
from app.checkout.models import CheckoutSession, CheckoutStatus
from app.documents import parse_object_id
from app.errors import Checker, DomainError, ErrorCode, Problem, fail
from app.orders import codes, endings, stock, tallies
from app.orders import repository as repo
from app.orders.models import Failure, Order, OrderItem, OrderState, PlannedTicket, UserTicket
from app.queue import service as queue
from app.queue import holds
from app.queue.models import HeldItem, QueueEntry, QueueStatus
from app.runtime import Runtime
from app.timeutil import now_ms

MAX_KEY_LENGTH = 200
# How long a retry waits for the first request with its key to finish.
REPLAY_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class PurchaseItem:
    ticket_type_id: str
    quantity: int

    def held(self) -> HeldItem:
        return HeldItem(ticketTypeId=self.ticket_type_id, quantity=self.quantity)


class Purchased(NamedTuple):
    """A purchase's answer: the order, and its tickets if this request issued them (else None)."""

    order: Order
    tickets: list[UserTicket] | None


async def purchase_tickets(
    rt: Runtime, *, actor: Viewer, event_id: str, items: list[PurchaseItem], idempotency_key: str
) -> Purchased:
    """M5: issue every item or none, inside the buyer's ACTIVE checkout session."""
    user_id = require_user(actor)
    key = _check_request(items, idempotency_key)
    request_hash = _request_hash(event_id, items)
    event, event_types = await catalog.sale_view_of(rt, event_id=event_id, field="input.eventId")
    entry = await queue.get_entry(rt, event_id=event.id, user_id=user_id)  # expired on the spot if its time is up
    if not _holds_open_checkout(entry):
        # Answered before the session counts (invariant 5): a retry of a purchase that
        # completed (and with it the session) gets that purchase's answer.
        existing = await repo.get_by_key(rt.db, user_id, key)
        if existing is not None:
            return Purchased(await _replay(rt, existing, request_hash), None)
        if event.status is EventStatus.CANCELLED:
            raise fail(ErrorCode.EVENT_CANCELLED, "the event is cancelled")
        raise await _no_checkout(rt, event.id, user_id)
    assert entry is not None and entry.session_id is not None
    if entry.holds and not holds.same([i.held() for i in items], entry.held_items):
        raise fail(ErrorCode.VALIDATION, "your checkout holds " + _listed(entry.held_items or [])
                   + "; buy exactly what it holds", "input.items")
    now = now_ms()
    checked = await _checked_items(rt, event, event_types, items, now)
    order_items, types = checked.items, checked.types
    order = Order.model_validate({
        "_id": str(ObjectId()), "eventId": event.id, "userId": user_id, "sessionId": entry.session_id,
        "idempotencyKey": key, "requestHash": request_hash, "items": [i.model_dump(by_alias=True) for i in order_items],
        "tickets": [t.model_dump(by_alias=True) for t in _plan_tickets(order_items)], "state": OrderState.PENDING,
        "totalCents": sum(i.quantity * i.unit_price_cents for i in order_items), "currency": checked.currency,
        "createdAtUtc": now, "updatedAtUtc": now, "fromHold": entry.holds,
    })
    # Held stock is there to buy: only a purchase that takes its stock now can be short.
    shortage = None if order.from_hold else await stock.confirmed_shortage(rt, order, types)
    if shortage is not None:
        # Refused without touching stock: the order is written FAILED at once, so that a twin
        # request, or a retry, with this key gets this same answer.
        order = order.model_copy(update={"state": OrderState.FAILED, "failure": Failure(
            code=shortage.code.value, message=shortage.message, field=shortage.field)})
    if not await rt.order_inserts.submit(event.id, (rt.db, order), _insert_group):
        # This key was used before (a twin request, or an earlier checkout): its answer is ours.
        raced = await repo.get_by_key(rt.db, user_id, key)
        assert raced is not None
        return Purchased(await _replay(rt, raced, request_hash), None)
    if shortage is not None:
        stock.count_refusal(shortage)
        raise DomainError(shortage)

    over_cap = await tallies.take(rt, order=order, caps=checked.caps)
    if over_cap is not None:
        # Stored under the key, as a shortage is: a twin, or a retry, gets this same answer.
        failure = Failure(code=over_cap.code.value, message=over_cap.message, field=over_cap.field)
        await repo.move(rt.db, order, OrderState.FAILED, now_ms(), {"failure": failure.model_dump()})
        metrics.PURCHASES.labels("failed").inc()
        raise DomainError(over_cap)
    try:
        ran_out = await (_buy_hold(rt, order, entry, types) if order.from_hold else stock.reserve_all(rt, order, types))
        order, tickets = await finish_order(rt, order, stock_ran_out=ran_out, entry=entry)
    except DomainError:  # the order FAILED (stock short, or undone by the repair): its count comes back
        await tallies.give_back(rt, order=order)
        raise
    return Purchased(order, tickets)


class Checked(NamedTuple):
    """A request's items as the sale's rules allow them: the order's items, their types as
    read, the caps in force, and the one currency they are paid in."""

    items: list[OrderItem]
    types: dict[str, EventTicket]
    caps: tallies.Caps
    currency: str


async def _checked_items(rt: Runtime, event: Event, event_types: list[EventTicket], items: list[PurchaseItem], now: int,
                         field: str = "input.items") -> Checked:
    """The items of a purchase (or of a checkout's hold, named at `field`), or every reason
    the sale's rules refuse them, before anything is written."""
    wanted = [i.ticket_type_id for i in items]
    types = {t.id: t for t in event_types if t.id in wanted}
    if len(types) < len(set(wanted)):  # a type the view does not hold (just added, or another event's)
        types = await catalog.ticket_types_by_id(rt, ids=wanted)
    all_types = {t.id: t for t in event_types} | {t.id: t for t in types.values() if t.event_id == event.id}
    caps = tallies.caps_of(event, list(all_types.values()), rt.settings.max_tickets_per_purchase)
    order_items = _check_items(rt, items, types, event.id, now, caps, field)
    currencies = {types[i.ticket_type_id].currency for i in items}
    if len(currencies) > 1:
        raise fail(ErrorCode.VALIDATION, "one order is paid in one currency: buy these types separately", field)
    return Checked(order_items, types, caps, currencies.pop())


async def start_checkout(rt: Runtime, *, actor: Viewer, event_id: str, items: list[PurchaseItem] | None) -> CheckoutSession:
    """M6: the ADMITTED buyer's checkout; if it names `items`, their stock is taken now and held
    for the session (checked first as a purchase of them would be), so its purchase cannot
    fail for stock."""
    if items is None:
        return await queue.start_checkout(rt, actor=actor, event_id=event_id)
    require_user(actor)
    event, event_types = await catalog.sale_view_of(rt, event_id=event_id, field="eventId")
    hold = await checked_hold(rt, event=event, event_types=event_types, items=items)
    return await queue.start_checkout(rt, actor=actor, event_id=event.id, hold=hold)


async def checked_hold(rt: Runtime, *, event: Event, event_types: list[EventTicket], items: list[PurchaseItem]) -> holds.Hold:
    """What a buyer may hold of the event (a checkout's, or a waitlist wish), named in the
    request's `items`: checked as a purchase of them would be."""
    _check_shape(Checker(), items, "items").raise_if_any()
    checked = await _checked_items(rt, event, event_types, items, now_ms(), "items")
    return holds.Hold([i.held() for i in items], checked.types, "items")


async def _buy_hold(rt: Runtime, order: Order, entry: QueueEntry, types: dict[str, EventTicket]) -> bool:
    """The order takes the stock its checkout holds (one guarded write of the entry); whether a
    type may have sold out with it. CHECKOUT_EXPIRED, and the order FAILS, if the checkout
    ended (and gave the stock back) first."""
    ran_out = await queue.buy_hold(rt, entry=entry, order_id=order.id, totals={t.id: t.quantity_total for t in types.values()})
    if ran_out is None:
        problem = Problem(ErrorCode.CHECKOUT_EXPIRED, "your checkout ended before this purchase, and what it held was "
                          "given back; join the queue again", "input.items")
        await repo.move(rt.db, order, OrderState.FAILED, now_ms(), {"failure": Failure(
            code=problem.code.value, message=problem.message, field=problem.field).model_dump()})
        metrics.PURCHASES.labels("failed").inc()
        raise DomainError(problem)
    return ran_out


def _listed(items: list[HeldItem]) -> str:
    return ", ".join(f"{i.quantity} of {i.ticket_type_id}" for i in items)


async def _insert_group(event_id: str, inserts: list[tuple[AsyncDatabase, Order]]) -> list[bool]:
    """The orders of a group of purchases of one event, written in one command (app/batches.py);
    for each, whether it was written (False: its key was used before)."""
    return await repo.insert_orders(inserts[0][0], [order for _, order in inserts])


def _holds_open_checkout(entry: QueueEntry | None) -> bool:
    """Does the entry hold a slot with a started, unexpired checkout? (Its expiry is the session's.)"""
    return (
        entry is not None and entry.status is QueueStatus.ADMITTED and entry.session_id is not None
        and entry.expires_at_utc > now_ms()
    )


async def finish_order(
    rt: Runtime, order: Order, *, stock_ran_out: bool = True, entry: QueueEntry | None = None
) -> tuple[Order, list[UserTicket] | None]:
    """PENDING (its stock taken) or RESERVED -> COMPLETED: issue the planned tickets
    (idempotent) and close the checkout, together with the other purchases of the event
    finishing at the same moment (app/orders/endings.py).

    PURCHASE_INTERRUPTED if the repair judged the order abandoned and undid it
    meanwhile. The event's stored status is refreshed (a sell-out closes the
    queue) unless the caller knows none of the order's types ran out with it:
    then the status cannot have changed. `entry`: the buyer's queue entry as the
    caller just read it (else it is read here). Returns the order, and its
    tickets if this call completed it (None if a concurrent one did).
    """
    ending = endings.Ending(rt, order, stock_ran_out, entry)
    return await rt.purchase_endings.submit(order.event_id, ending, endings.finish_group)


async def my_tickets(rt: Runtime, *, actor: Viewer, event_id: str | None) -> list[UserTicket]:
    """Q4: the viewer's tickets, newest first."""
    user_id = require_user(actor)
    if event_id is not None and not ObjectId.is_valid(event_id):
        return []
    return await repo.tickets_of_user(rt.db, user_id, event_id)


async def tickets_of_order(rt: Runtime, *, order_id: str) -> list[UserTicket]:
    return await repo.tickets_of_order(rt.db, order_id)


async def use_ticket(rt: Runtime, *, confirmation_code: str, event_id: str) -> UserTicket | None:
    """VALID -> USED once; None if no VALID ticket of `event_id` has this code."""
    return await repo.use_ticket(rt.db, confirmation_code, event_id, now_ms())


async def find_ticket(rt: Runtime, *, confirmation_code: str) -> UserTicket | None:
    return await repo.find_by_code(rt.db, confirmation_code)


async def cancel_event_tickets(rt: Runtime, *, event_id: str) -> int:
    """Cancellation of an event: its VALID tickets become CANCELLED (USED ones were used)."""
    return await repo.cancel_event_tickets(rt.db, event_id)


async def stale_orders(rt: Runtime, *, untouched_since_ms: int) -> list[Order]:
    """Orders still in flight (PENDING or RESERVED) and untouched since then: a crashed process's."""
    return await repo.stale_in_flight(rt.db, untouched_since_ms)


async def orders_in_flight(rt: Runtime, *, event_id: str) -> list[Order]:
    """The event's orders still in flight: their stock is taken, or may be at any moment."""
    return await repo.in_flight_for_event(rt.db, event_id)


async def sessions_that_bought(rt: Runtime, *, sessions: list[tuple[str, str]], completed_before: int) -> set[str]:
    """Of these (buyer, session id) pairs, the sessions whose purchase COMPLETED before then."""
    return await repo.sessions_completed(rt.db, sessions, completed_before) if sessions else set()


async def stock_was_taken(rt: Runtime, *, order: Order) -> bool:
    """Did this in-flight order take its stock (RESERVED, some of its tickets are in, or it
    bought its checkout's hold)?"""
    if order.state is OrderState.RESERVED or await repo.any_ticket_of(rt.db, order):
        return True
    return order.from_hold and await queue.hold_bought_by(rt, event_id=order.event_id, user_id=order.user_id,
                                                          order_id=order.id)


async def undo_abandoned_order(rt: Runtime, *, order: Order) -> bool:
    """Repair: an order abandoned before it took its stock FAILS, and nothing of it stays
    issued; False if it moved on meanwhile (another repair, or its purchase finishing)."""
    failure = Failure(code=ErrorCode.PURCHASE_INTERRUPTED.value,
                      message="the purchase was interrupted and undone; nothing was issued", field=None)
    if not await repo.move(rt.db, order, OrderState.FAILED, now_ms(), {"failure": failure.model_dump()}):
        return False
    # A purchase still running may insert its tickets after our look: it takes them back itself
    # when it finds the order FAILED, and so do we, whichever comes last.
    await repo.delete_tickets(rt.db, [t.id for t in order.tickets])
    await tallies.give_back(rt, order=order)
    return True


async def issued_by_type(rt: Runtime, *, event_id: str, excluding_orders: list[str] = ()) -> dict[str, int]:
    """Issued, non-cancelled tickets of each ticket type of the event."""
    return await repo.count_issued_by_type(rt.db, event_id, list(excluding_orders))


# --- the steps ---------------------------------------------------------------------


def _check_request(items: list[PurchaseItem], key: str) -> str:
    check = Checker()
    key = (key or "").strip()
    check.require(0 < len(key) <= MAX_KEY_LENGTH, "input.idempotencyKey", f"must be 1 to {MAX_KEY_LENGTH} characters")
    _check_shape(check, items, "input.items").raise_if_any()
    return key


def _check_shape(check: Checker, items: list[PurchaseItem], field: str) -> Checker:
    """The items' own rules (at least one, quantities of 1 or more, each type once, ids well
    formed) added to `check`; a malformed id raises NOT_FOUND once the rest has passed."""
    check.require(bool(items), field, "must list at least one item")
    seen: set[str] = set()
    for i, item in enumerate(items):
        check.require(item.quantity >= 1, f"{field}.{i}.quantity", "must be at least 1")
        if item.ticket_type_id in seen:
            check.require(False, f"{field}.{i}.ticketTypeId", "each ticket type may appear once; add up the quantity")
        seen.add(item.ticket_type_id)
    if not check.problems:
        for i, item in enumerate(items):
            parse_object_id(item.ticket_type_id, "ticket type", f"{field}.{i}.ticketTypeId")
    return check


def _request_hash(event_id: str, items: list[PurchaseItem]) -> str:
    canonical = {"eventId": event_id, "items": sorted([i.ticket_type_id, i.quantity] for i in items)}
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


async def _no_checkout(rt: Runtime, event_id: str, user_id: str) -> DomainError:
    """Why the buyer holds no open checkout: never started one, it expired, or it is over."""
    session = await checkout.latest_session(rt, event_id=event_id, user_id=user_id)
    if session is None:
        return fail(ErrorCode.NO_ACTIVE_CHECKOUT, "start checkout first: you need an ACTIVE checkout session")
    if session.status is not CheckoutStatus.COMPLETED:
        return fail(ErrorCode.CHECKOUT_EXPIRED, "your checkout session has expired; join the queue again")
    return fail(ErrorCode.NO_ACTIVE_CHECKOUT, "your checkout session is over; join the queue again to buy more")


def _check_items(
    rt: Runtime, items: list[PurchaseItem], types: dict[str, EventTicket], event_id: str, now: int, caps: tallies.Caps,
    field: str,
) -> list[OrderItem]:
    """The order's items, or every reason the request is refused before anything is written
    (an order bigger than a cap refuses itself, whatever the buyer holds)."""
    problems: list[Problem] = []
    order_items: list[OrderItem] = []
    for i, item in enumerate(items):
        at = f"{field}.{i}"
        ticket = types.get(item.ticket_type_id)
        if ticket is None or ticket.event_id != event_id:
            problems.append(Problem(ErrorCode.NOT_FOUND, "no such ticket type for this event", f"{at}.ticketTypeId"))
        elif now < ticket.sale_starts_at_utc:
            problems.append(Problem(ErrorCode.SALE_NOT_OPEN, f"the {ticket.name} sale has not opened yet", f"{at}.ticketTypeId"))
        elif now >= ticket.sale_ends_at_utc:
            problems.append(Problem(ErrorCode.SALE_ENDED, f"the {ticket.name} sale has ended", f"{at}.ticketTypeId"))
        elif item.quantity > ticket.max_per_purchase:
            problems.append(Problem(
                ErrorCode.PURCHASE_LIMIT_EXCEEDED, f"at most {ticket.max_per_purchase} {ticket.name} per purchase", f"{at}.quantity"
            ))
        elif ticket.id in caps.by_type and item.quantity > (cap := caps.by_type[ticket.id].cap):
            problems.append(Problem(ErrorCode.PURCHASE_LIMIT_EXCEEDED, f"at most {cap} {ticket.name} per buyer", f"{at}.quantity"))
        else:
            order_items.append(OrderItem(
                ticketTypeId=ticket.id, type=ticket.type, quantity=item.quantity, unitPriceCents=ticket.price_cents
            ))
    total = sum(i.quantity for i in items)
    if total > rt.settings.max_tickets_per_purchase:
        problems.append(Problem(
            ErrorCode.PURCHASE_LIMIT_EXCEEDED, f"at most {rt.settings.max_tickets_per_purchase} tickets per purchase", field
        ))
    elif not problems and total > caps.total:  # said once: the limits above already name the excess
        problems.append(Problem(
            ErrorCode.PURCHASE_LIMIT_EXCEEDED, f"at most {caps.total} tickets per buyer for this event", field
        ))
    if problems:
        raise DomainError(*problems)
    return order_items


def _plan_tickets(items: list[OrderItem]) -> list[PlannedTicket]:
    return [
        PlannedTicket(
            id=str(ObjectId()), ticketTypeId=item.ticket_type_id, type=item.type,
            ticketNumber=codes.ticket_number(), confirmationCode=codes.confirmation_code(),
        )
        for item in items
        for _ in range(item.quantity)
    ]


async def _replay(rt: Runtime, order: Order, request_hash: str) -> Order:
    """The answer the first request with this key got (or will get)."""
    if order.request_hash != request_hash:
        raise fail(
            ErrorCode.IDEMPOTENCY_KEY_REUSED, "this idempotency key was used for a different purchase",
            "input.idempotencyKey",
        )
    deadline = asyncio.get_running_loop().time() + REPLAY_WAIT_SECONDS
    while True:
        if order.state is OrderState.COMPLETED:
            return order
        if order.state is OrderState.FAILED and order.failure is not None:
            raise DomainError(Problem(ErrorCode(order.failure.code), order.failure.message, order.failure.field))
        if asyncio.get_running_loop().time() > deadline:
            raise fail(ErrorCode.RATE_LIMITED, "this purchase is still being processed; retry in a moment")
        await asyncio.sleep(0.05)
        order = await repo.get_order(rt.db, order.id) or order
