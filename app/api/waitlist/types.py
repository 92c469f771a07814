"""GraphQL types of the waitlist (app/waitlist)."""

from __future__ import annotations

from enum import Enum

import strawberry

from app.api.checkout.types import HeldItem
from app.api.errors import UserError
from app.api.scalars import DateTime, ms_to_datetime
from app.timeutil import from_ms
from app.waitlist import models

_STATUS_DESCRIPTIONS = {
    "WAITING": "On the list, oldest first: stock that comes back and fits the wish is offered.",
    "OFFERED": "The wished tickets are held for the buyer until offerExpiresAt: their queueUpdates shows them "
               "ADMITTED, and purchaseTickets of exactly these buys them.",
    "BOUGHT": "The offer was bought.",
    "LAPSED": "The offer ended unbought and went to the next buyer.",
    "LEFT": "The buyer left the list (an offer held for them went to the next buyer).",
}
WaitlistStatus = strawberry.enum(Enum("WaitlistStatus", {  # type: ignore[misc]
    m.name: strawberry.enum_value(m.value, description=_STATUS_DESCRIPTIONS.get(m.name)) for m in models.WaitlistStatus
}), name="WaitlistStatus")


@strawberry.type(description="A buyer's place on a sold-out event's waitlist, and what they wait for.")
class WaitlistEntry:
    event_id: strawberry.ID
    user_id: strawberry.ID
    status: WaitlistStatus
    items: list[HeldItem] = strawberry.field(description="What the buyer wants; only stock that fits it all is offered.")
    position: int | None = strawberry.field(description="1-based place among the WAITING; null unless WAITING.")
    joined_at: DateTime  # type: ignore[valid-type]
    offered_at: DateTime | None  # type: ignore[valid-type]
    offer_expires_at: DateTime | None = strawberry.field(  # type: ignore[valid-type]
        description="Until when the offered tickets are held for the buyer.")

    @classmethod
    def from_model(cls, e: models.WaitlistEntry, position: int | None) -> WaitlistEntry:
        return cls(
            event_id=strawberry.ID(e.event_id), user_id=strawberry.ID(e.user_id), status=WaitlistStatus(e.status.value),
            items=[HeldItem(ticket_type_id=strawberry.ID(i.ticket_type_id), quantity=i.quantity) for i in e.items],
            position=position, joined_at=from_ms(e.joined_at_utc), offered_at=ms_to_datetime(e.offered_at_utc),
            offer_expires_at=ms_to_datetime(e.offer_expires_at_utc),
        )


@strawberry.type
class WaitlistPayload:
    entry: WaitlistEntry | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
