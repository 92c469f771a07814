"""The orders, userTickets and buyerTallies collections."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from app.db import DUPLICATE_KEY, ORDERS_IN_FLIGHT, insert_each
from app.orders.models import IN_FLIGHT, Claim, Order, OrderState, Tally, TicketStatus, UserTicket


async def insert_orders(db: AsyncDatabase, orders: list[Order]) -> list[bool]:
    """Insert the orders in one command; for each, whether it was written (False: its buyer
    already used its idempotency key)."""
    return await insert_each(db.orders, [o.to_doc() for o in orders])


async def get_order(db: AsyncDatabase, order_id: str) -> Order | None:
    doc = await db.orders.find_one({"_id": ObjectId(order_id)})
    return Order.from_doc(doc) if doc else None


async def get_by_key(db: AsyncDatabase, user_id: str, key: str) -> Order | None:
    doc = await db.orders.find_one({"userId": user_id, "idempotencyKey": key})
    return Order.from_doc(doc) if doc else None


async def move(db: AsyncDatabase, order: Order, to_state: OrderState, now: int,
               extra: dict[str, Any] | None = None) -> Order | None:
    """The order's state as we read it -> to_state, once; the order after it, or None if
    its state had changed first. (`update_one`, not `find_one_and_update`: SecantusDB
    runs the latter's write as a scan of the whole collection.)"""
    changes = {"state": to_state.value, "updatedAtUtc": now, **(extra or {})}
    result = await db.orders.update_one({"_id": ObjectId(order.id), "state": order.state.value}, {"$set": changes})
    return Order.from_doc(order.to_doc() | changes) if result.modified_count else None


async def complete_many(db: AsyncDatabase, orders: list[Order], now: int) -> set[str]:
    """Each order's state as we read it -> COMPLETED, in one write; the ids of those this call
    completed (an order missing was undone, or finished by another, first)."""
    if len(orders) == 1:
        return {orders[0].id} if await move(db, orders[0], OrderState.COMPLETED, now) else set()
    mark = ObjectId()  # what this call completed, told apart from anybody else's
    # `_id` first: SecantusDB then finds the candidates by point lookups.
    ids = {"$in": [ObjectId(o.id) for o in orders]}
    result = await db.orders.update_many(
        {"_id": ids, "state": {"$in": sorted({o.state.value for o in orders})}},
        {"$set": {"state": OrderState.COMPLETED.value, "updatedAtUtc": now, "completedBy": mark}},
    )
    if result.modified_count == len(orders):
        return {o.id for o in orders}
    return {str(d["_id"]) async for d in db.orders.find({"_id": ids}, projection={"completedBy": 1})
            if d.get("completedBy") == mark}


async def replace_planned_tickets(db: AsyncDatabase, order_id: str, tickets: list[dict]) -> None:
    await db.orders.update_one({"_id": ObjectId(order_id)}, {"$set": {"tickets": tickets}})


async def stale_in_flight(db: AsyncDatabase, updated_before: int, limit: int = 500) -> list[Order]:
    """In-flight orders untouched since `updated_before`, oldest first; reads only in-flight orders."""
    found = await _in_flight(db, {"updatedAtUtc": {"$lt": updated_before}})
    return sorted(found, key=lambda o: o.updated_at_utc)[:limit]


async def in_flight_for_event(db: AsyncDatabase, event_id: str) -> list[Order]:
    """The event's in-flight orders; reads only those."""
    return await _in_flight(db, {"eventId": ObjectId(event_id)})


async def _in_flight(db: AsyncDatabase, query: dict[str, Any]) -> list[Order]:
    """In-flight orders matching `query`, through their partial index (app/db.py), one state at a
    time: an equality on the state is what any server's planner can prove lies inside the index's
    filter (SecantusDB proves no `$in`), and the hint keeps a server from scanning the collection
    for a filter it would not otherwise serve from an index keyed on eventId."""
    found: list[Order] = []
    for state in IN_FLIGHT:
        cursor = db.orders.find({**query, "state": state.value}, hint=ORDERS_IN_FLIGHT)
        found += [Order.from_doc(d) async for d in cursor]
    return found


async def sessions_completed(db: AsyncDatabase, sessions: list[tuple[str, str]], before: int) -> set[str]:
    """Of these (buyer, session id) pairs, the sessions holding an order COMPLETED before `before`.
    Read through the buyers' (userId, idempotencyKey) index: only these buyers' own orders."""
    wanted = set(sessions)
    cursor = db.orders.find({"userId": {"$in": sorted({user for user, _ in wanted})}},
                            projection={"userId": 1, "sessionId": 1, "state": 1, "updatedAtUtc": 1})
    return {str(d["sessionId"]) async for d in cursor
            if d["state"] == OrderState.COMPLETED.value and d["updatedAtUtc"] < before
            and (d["userId"], str(d["sessionId"])) in wanted}


async def insert_tickets(db: AsyncDatabase, tickets: list[UserTicket]) -> list[int]:
    """Insert what is not there yet; the indexes of tickets whose number or code clashed with another's."""
    if not tickets:
        return []
    try:
        await db.userTickets.insert_many([t.to_doc() for t in tickets], ordered=False)
    except BulkWriteError as error:
        failed = []
        for failure in error.details.get("writeErrors", []):
            if failure.get("code") != DUPLICATE_KEY:
                raise
            failed.append(failure["index"])
        # A duplicate is either this very ticket, inserted by an earlier finish
        # (servers differ in which index they name), or another ticket holding
        # the same number or code: only the second is a clash to draw again.
        ids = [ObjectId(tickets[i].id) for i in failed]
        present = {str(d["_id"]) async for d in db.userTickets.find({"_id": {"$in": ids}}, projection={"_id": 1})}
        return [i for i in failed if tickets[i].id not in present]
    return []


async def any_ticket_of(db: AsyncDatabase, order: Order) -> bool:
    """Is any of the order's planned tickets in the database (so its stock was taken)?"""
    ids = [ObjectId(t.id) for t in order.tickets]
    return await db.userTickets.find_one({"_id": {"$in": ids}}, projection={"_id": 1}) is not None


async def delete_tickets(db: AsyncDatabase, ticket_ids: list[str]) -> None:
    """Take back tickets of an order that was undone while they were being issued."""
    await db.userTickets.delete_many({"_id": {"$in": [ObjectId(t) for t in ticket_ids]}})


async def tickets_of_user(db: AsyncDatabase, user_id: str, event_id: str | None) -> list[UserTicket]:
    query: dict[str, Any] = {"userId": user_id}
    if event_id is not None:
        query["eventId"] = ObjectId(event_id)
    cursor = db.userTickets.find(query).sort([("purchasedAtUtc", DESCENDING), ("ticketNumber", DESCENDING)])
    return [UserTicket.from_doc(d) async for d in cursor]


async def tickets_of_order(db: AsyncDatabase, order_id: str) -> list[UserTicket]:
    cursor = db.userTickets.find({"orderId": ObjectId(order_id)}).sort([("ticketNumber", 1)])
    return [UserTicket.from_doc(d) async for d in cursor]


async def use_ticket(db: AsyncDatabase, confirmation_code: str, event_id: str, now: int) -> UserTicket | None:
    """VALID -> USED, exactly once, and only for a ticket of `event_id`: of two gates scanning
    at once, one wins; a gate of another event changes nothing."""
    used = {"status": TicketStatus.USED.value, "usedAtUtc": now}
    result = await db.userTickets.update_one(
        {"confirmationCode": confirmation_code, "status": TicketStatus.VALID.value, "eventId": ObjectId(event_id)},
        {"$set": used},
    )
    if result.modified_count == 0:
        return None
    doc = await db.userTickets.find_one({"confirmationCode": confirmation_code})
    return UserTicket.from_doc(doc | used) if doc else None


async def find_by_code(db: AsyncDatabase, confirmation_code: str) -> UserTicket | None:
    doc = await db.userTickets.find_one({"confirmationCode": confirmation_code})
    return UserTicket.from_doc(doc) if doc else None


async def cancel_event_tickets(db: AsyncDatabase, event_id: str) -> int:
    result = await db.userTickets.update_many(
        {"eventId": ObjectId(event_id), "status": TicketStatus.VALID.value},
        {"$set": {"status": TicketStatus.CANCELLED.value}},
    )
    return result.modified_count


async def count_issued_by_type(db: AsyncDatabase, event_id: str, excluding_orders: list[str]) -> dict[str, int]:
    """Issued, non-cancelled tickets of each ticket type of the event (for the counter repair)."""
    pipeline = [
        {"$match": {
            "eventId": ObjectId(event_id),
            "status": {"$ne": TicketStatus.CANCELLED.value},
            "orderId": {"$nin": [ObjectId(o) for o in excluding_orders]},
        }},
        {"$group": {"_id": "$eventTicketId", "n": {"$sum": 1}}},
    ]
    cursor = await db.userTickets.aggregate(pipeline)
    return {str(d["_id"]): d["n"] async for d in cursor}


# --- buyers' tallies (app/orders/tallies.py) --------------------------------------------------


async def take_tallies(db: AsyncDatabase, claims: list[Claim]) -> list[bool]:
    """Each claim's guarded `$inc` of its buyer's tally, all in one command; for each, whether it
    was taken. False: the tally holds too many for the claim's room (or counts its order
    already), or another claim created the tally at the same moment: the caller reads it.

    An absent tally is created by the upsert. A present one whose guard fails makes the upsert
    insert a second document with its `_id`: the duplicate key is the refusal. The guards are
    `$not: {$gt}` so that a count not there yet (a new tally, a type not bought before) passes,
    and no filter holds a top-level operator (SecantusDB would scan the collection for it).
    """
    statements = []
    for claim in claims:
        guard: dict[str, Any] = {"_id": claim.tally_id, "orders": {"$ne": claim.order_id},
                                 "total": {"$not": {"$gt": claim.room}}}
        guard |= {f"types.{t}": {"$not": {"$gt": room}} for t, room in claim.type_rooms.items()}
        counts = {"total": sum(claim.counts.values())} | {f"types.{t}": n for t, n in claim.counts.items()}
        statements.append(UpdateOne(guard, {
            "$inc": counts, "$push": {"orders": claim.order_id},
            "$setOnInsert": {"eventId": ObjectId(claim.event_id), "userId": claim.user_id},
        }, upsert=True))
    taken = [True] * len(claims)
    try:
        await db.buyerTallies.bulk_write(statements, ordered=False)
    except BulkWriteError as error:
        for failure in error.details.get("writeErrors", []):
            if failure.get("code") != DUPLICATE_KEY:
                raise
            taken[failure["index"]] = False
    return taken


async def read_tallies(db: AsyncDatabase, tally_ids: list[str]) -> dict[str, Tally]:
    cursor = db.buyerTallies.find({"_id": tally_ids[0] if len(tally_ids) == 1 else {"$in": tally_ids}})
    return {d["_id"]: Tally.model_validate(d) async for d in cursor}


async def give_back_tallies(db: AsyncDatabase, claims: list[Claim]) -> None:
    """Each claim's counts come off its tally, once: only while the tally still lists its order."""
    await db.buyerTallies.bulk_write([
        UpdateOne({"_id": c.tally_id, "orders": c.order_id}, {
            "$inc": {"total": -sum(c.counts.values())} | {f"types.{t}": -n for t, n in c.counts.items()},
            "$pull": {"orders": c.order_id},
        })
        for c in claims
    ], ordered=False)
