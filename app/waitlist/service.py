"""The waitlist: once nothing of an event is left to claim, a buyer may wait for tickets that
come back, saying what they want; stock that comes back is offered to the oldest buyers whose
wish fits, held for them for WAITLIST_OFFER_SECONDS.

An offer is an admission of the buyer's own, with a checkout already holding the
offered stock (app/queue/holds.py): it is pushed on their queueUpdates as
ADMITTED, bought with the normal purchaseTickets, and given back by the normal
expiry, after which `offer_returned_stock` offers it to the next buyer. The
buyers waiting in the queue come first: nothing is offered while anyone waits
there. A waitlist entry is offered once; its record says whether it was
BOUGHT or LAPSED.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from bson import ObjectId

from app.auth import Viewer, require_user
from app.catalog import service as catalog
from app.catalog.models import EventStatus, EventTicket
from app.errors import DomainError, ErrorCode, fail
from app.orders import service as orders
from app.queue import holds
from app.queue import service as queue
from app.queue.models import HoldState, QueueStatus
from app.runtime import Runtime
from app.timeutil import now_ms
from app.waitlist import repository as repo
from app.waitlist.models import WaitlistEntry, WaitlistStatus

log = logging.getLogger("app.waitlist")

# Waitlisted buyers looked at per event and round: the oldest, as far as any stock could fit.
OFFER_BATCH = 100


class Seen(NamedTuple):
    """An entry as its buyer is shown it: its 1-based place among the WAITING, if it waits."""

    entry: WaitlistEntry
    position: int | None


async def join_waitlist(rt: Runtime, *, actor: Viewer, event_id: str, items: list[orders.PurchaseItem]) -> Seen:
    """Wait for tickets of a sold-out event (nothing left to claim), wanting `items` (checked as
    a purchase of them would be); the buyer's entry as it is if they are on the list already."""
    user_id = require_user(actor)
    event, _ = await catalog.sale_view_of(rt, event_id=event_id, field="eventId")
    existing = await repo.get(rt.db, event.id, user_id)
    if existing is not None and existing.on_list():
        return await _seen(rt, existing)
    if event.status is EventStatus.CANCELLED:
        raise fail(ErrorCode.EVENT_CANCELLED, "the event is cancelled")
    types = await catalog.ticket_types_of_event(rt, event_id=event.id)  # now, not the view: is it sold out?
    if not types or any(t.quantity_remaining > 0 for t in types):
        raise fail(ErrorCode.NOT_SOLD_OUT, "tickets are left: join the event's queue instead", "eventId")
    hold = await orders.checked_hold(rt, event=event, event_types=types, items=items)
    now = now_ms()
    fresh = {"items": [i.model_dump(by_alias=True) for i in hold.items], "status": WaitlistStatus.WAITING.value,
             "joinedAtUtc": now, "offeredAtUtc": None, "offerExpiresAtUtc": None, "endedAtUtc": None}
    if existing is None:
        entry = WaitlistEntry.model_validate({"_id": str(ObjectId()), "eventId": event.id, "userId": user_id, **fresh})
        if not await repo.insert(rt.db, entry):  # a twin request came first
            return await _seen(rt, await _entry(rt, event.id, user_id))
    else:  # bought, lapsed or left before: a new place at the back
        entry = await repo.move(rt.db, existing, fresh) or await _entry(rt, event.id, user_id)
    return await _seen(rt, entry)


async def leave_waitlist(rt: Runtime, *, actor: Viewer, event_id: str) -> WaitlistEntry:
    """Off the list; an offer held for the buyer ends, and goes to the next buyer."""
    user_id = require_user(actor)
    event = await catalog.get_event(rt, event_id=event_id, field="eventId")
    for _ in range(5):  # an offer may come under our feet: read again and retry
        entry = await repo.get(rt.db, event.id, user_id)
        if entry is None or not entry.on_list():
            raise fail(ErrorCode.NOT_ON_WAITLIST, "you are not on this event's waitlist")
        left = await repo.move(rt.db, entry, {"status": WaitlistStatus.LEFT.value, "endedAtUtc": now_ms()})
        if left is None:
            continue
        if entry.status is WaitlistStatus.OFFERED:
            await _end_offer(rt, event.id, user_id, entry.id)
            await offer_returned_stock(rt, event_id=event.id)
        return left
    raise fail(ErrorCode.NOT_ON_WAITLIST, "your place changed while leaving; try again")


async def waitlist_entry(rt: Runtime, *, actor: Viewer, event_id: str) -> Seen | None:
    """The viewer's waitlist entry for the event (None: never joined)."""
    user_id = require_user(actor)
    if not ObjectId.is_valid(event_id):
        return None
    entry = await repo.get(rt.db, event_id, user_id)
    return None if entry is None else await _seen(rt, entry)


async def offer_returned_stock(rt: Runtime, *, event_id: str) -> list[WaitlistEntry]:
    """Settle the event's ended offers, then offer what stock is free to the oldest waitlisted
    buyers whose wish fits; the entries offered now. Safe to run at once from anywhere."""
    await _settle_offers(rt, event_id)
    # The stock first: a sold-out event's waitlist, looked at twice a second, costs two reads.
    types = {t.id: t for t in await catalog.ticket_types_of_event(rt, event_id=event_id)}
    free = {t.id: t.quantity_remaining for t in types.values()}
    if not any(free.values()):
        return []
    waiting = await repo.waiting(rt.db, event_id, OFFER_BATCH)
    if not waiting:
        return []
    event = await catalog.get_event(rt, event_id=event_id)
    if event.status is EventStatus.CANCELLED:
        return []
    offered: list[WaitlistEntry] = []
    for entry in waiting:
        if not all(free.get(i.ticket_type_id, 0) >= i.quantity for i in entry.items):
            continue  # an older wish that does not fit keeps its place; a smaller one behind it may fit
        made = await _offer(rt, entry, types)
        if made is None:
            if await _queue_comes_first(rt, event_id):
                break
            continue
        offered.append(made)
        for item in entry.items:
            free[item.ticket_type_id] -= item.quantity
        if not any(free.values()):
            break
    return offered


async def offer_where_stock_returned(rt: Runtime) -> int:
    """The sweep's round: `offer_returned_stock` on every event with buyers on its waitlist; how many offered."""
    offered = 0
    for event_id in await repo.events_on_list(rt.db):
        offered += len(await offer_returned_stock(rt, event_id=event_id))
    return offered


async def _offer(rt: Runtime, entry: WaitlistEntry, types: dict[str, EventTicket]) -> WaitlistEntry | None:
    """Hold the entry's wish for its buyer and admit them with it; the entry OFFERED, or None
    (the stock went first, the buyer left, or the queue has buyers waiting)."""
    admission = await queue.get_entry(rt, event_id=entry.event_id, user_id=entry.user_id)
    if admission is not None and admission.is_live():  # in the queue (or a checkout) already: passed over
        return None
    now = now_ms()
    expires_at = now + rt.settings.waitlist_offer_seconds * 1000
    offered = await repo.move(rt.db, entry, {"status": WaitlistStatus.OFFERED.value, "offeredAtUtc": now,
                                             "offerExpiresAtUtc": expires_at})
    if offered is None:
        return None
    hold = holds.Hold(entry.items, types, offered=True)
    try:
        await holds.take(rt, entry.event_id, hold)
    except DomainError:
        await _back_to_waiting(rt, offered)
        return None
    admitted = await queue.offer_admission(rt, event_id=entry.event_id, user_id=entry.user_id, hold=hold,
                                           offer_id=entry.id, expires_at=expires_at)
    if admitted is None:
        await holds.give_back(rt, entry.event_id, entry.items, offered=True)
        await _back_to_waiting(rt, offered)
        return None
    log.info("waitlist of %s: offered %s to %s until %s", entry.event_id, holds.total(entry.items), entry.user_id,
             expires_at)
    return offered


async def _back_to_waiting(rt: Runtime, offered: WaitlistEntry) -> None:
    await repo.move(rt.db, offered, {"status": WaitlistStatus.WAITING.value, "offeredAtUtc": None,
                                     "offerExpiresAtUtc": None})


async def _queue_comes_first(rt: Runtime, event_id: str) -> bool:
    """Do buyers wait in the event's queue? Then what comes back is theirs."""
    return (await queue.turns_of(rt, event_id=event_id)).waiting > 0


async def _settle_offers(rt: Runtime, event_id: str) -> None:
    """OFFERED entries whose admission ended: BOUGHT if its hold was bought, else LAPSED."""
    for entry in await repo.offered(rt.db, event_id):
        admission = await queue.get_entry(rt, event_id=event_id, user_id=entry.user_id)  # expires it if due
        if admission is not None and admission.offer_of == entry.id and admission.is_live():
            continue
        # Bought: its purchase took the stock (the repair finishes one that died after).
        bought = admission is not None and admission.offer_of == entry.id and admission.hold_state is HoldState.BOUGHT
        status = WaitlistStatus.BOUGHT if bought else WaitlistStatus.LAPSED
        await repo.move(rt.db, entry, {"status": status.value, "endedAtUtc": now_ms()})


async def _end_offer(rt: Runtime, event_id: str, user_id: str, offer_id: str) -> None:
    """The admission that holds a waitlist offer ends (its stock given back), if it is still live."""
    for _ in range(5):
        admission = await queue.get_entry(rt, event_id=event_id, user_id=user_id)
        if admission is None or admission.offer_of != offer_id or not admission.is_live():
            return
        # EXPIRED, not LEFT: they left the waitlist, and no cooldown keeps them from the queue.
        if await queue.end_admission(rt, admission, QueueStatus.EXPIRED, now_ms()) is not None:
            return


async def _entry(rt: Runtime, event_id: str, user_id: str) -> WaitlistEntry:
    entry = await repo.get(rt.db, event_id, user_id)
    assert entry is not None  # entries are never deleted
    return entry


async def _seen(rt: Runtime, entry: WaitlistEntry) -> Seen:
    if entry.status is not WaitlistStatus.WAITING:
        return Seen(entry, None)
    return Seen(entry, await repo.ahead_of(rt.db, entry) + 1)
