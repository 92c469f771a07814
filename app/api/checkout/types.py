"""GraphQL types of checkout sessions (app/checkout)."""

from __future__ import annotations

import strawberry

from app.api.errors import UserError
from app.api.scalars import DateTime
from app.checkout import models as checkout_models
from app.timeutil import from_ms

# Wrapped from the domain's enum, so the API cannot drift from what is stored.
CheckoutStatus = strawberry.enum(checkout_models.CheckoutStatus, name="CheckoutStatus")


@strawberry.type(description="Tickets of one type that a checkout holds for its buyer until it ends.")
class HeldItem:
    ticket_type_id: strawberry.ID
    quantity: int


@strawberry.type
class CheckoutSession:
    id: strawberry.ID
    event_id: strawberry.ID
    user_id: strawberry.ID
    status: CheckoutStatus
    created_at: DateTime  # type: ignore[valid-type]
    expires_at: DateTime  # type: ignore[valid-type]
    held_items: list[HeldItem] = strawberry.field(
        description="What the session holds for its buyer (named when it started): taken from the sale until the "
        "session ends, and what its purchase must buy. Empty if it named nothing.")

    @classmethod
    def from_model(cls, s: checkout_models.CheckoutSession) -> CheckoutSession:
        return cls(
            id=strawberry.ID(s.id), event_id=strawberry.ID(s.event_id), user_id=strawberry.ID(s.user_id),
            status=s.status, created_at=from_ms(s.created_at_utc), expires_at=from_ms(s.expires_at_utc),
            held_items=[HeldItem(ticket_type_id=strawberry.ID(i.ticket_type_id), quantity=i.quantity)
                        for i in s.held_items or ()],
        )


@strawberry.type
class CheckoutPayload:
    session: CheckoutSession | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
