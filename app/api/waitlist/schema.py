"""The waitlist's query and mutations: `waitlistEntry`, `joinWaitlist`, `leaveWaitlist`."""

from __future__ import annotations

import strawberry

from app.api.context import Info
from app.api.errors import answer
from app.api.orders.types import PurchaseItemInput
from app.api.waitlist.types import WaitlistEntry, WaitlistPayload
from app.orders.service import PurchaseItem
from app.waitlist import service as waitlist


@strawberry.type
class WaitlistQuery:
    @strawberry.field(description="The viewer's waitlist entry for the event; null when the viewer never joined it.")
    async def waitlist_entry(self, info: Info, event_id: strawberry.ID) -> WaitlistEntry | None:
        seen = await waitlist.waitlist_entry(info.context.runtime, actor=info.context.viewer, event_id=str(event_id))
        return None if seen is None else WaitlistEntry.from_model(*seen)


@strawberry.type
class WaitlistMutation:
    @strawberry.mutation(
        description="Once nothing of the event is left to claim (NOT_SOLD_OUT before), wait for tickets that come "
        "back: `items` says what (checked as a purchase of them would be). Stock that comes back is offered to the "
        "oldest buyers whose wish fits, held for WAITLIST_OFFER_SECONDS: the offer arrives on queueUpdates as an "
        "ADMITTED entry whose checkout holds it. Idempotent while on the list.")
    async def join_waitlist(self, info: Info, event_id: strawberry.ID, items: list[PurchaseItemInput]) -> WaitlistPayload:
        wanted = [PurchaseItem(str(i.ticket_type_id), i.quantity) for i in items]
        return await answer(
            WaitlistPayload, lambda: waitlist.join_waitlist(info.context.runtime, actor=info.context.viewer,
                                                            event_id=str(event_id), items=wanted),
            lambda seen: WaitlistPayload(entry=WaitlistEntry.from_model(*seen)))

    @strawberry.mutation(description="Leave the waitlist (NOT_ON_WAITLIST if not on it); an offer held for the "
                         "viewer goes to the next buyer.")
    async def leave_waitlist(self, info: Info, event_id: strawberry.ID) -> WaitlistPayload:
        return await answer(
            WaitlistPayload, lambda: waitlist.leave_waitlist(info.context.runtime, actor=info.context.viewer,
                                                             event_id=str(event_id)),
            lambda entry: WaitlistPayload(entry=WaitlistEntry.from_model(entry, None)))
