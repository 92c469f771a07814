"""GraphQL types of gate check-in (app/checkin)."""

from __future__ import annotations

import strawberry

from app.api.errors import UserError
from app.api.orders.types import UserTicket


@strawberry.type
class CheckInPayload:
    ticket: UserTicket | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
