"""Gate check-in."""

from __future__ import annotations

import strawberry

from app.api.checkin.types import CheckInPayload
from app.api.context import Info
from app.api.errors import answer
from app.api.orders.types import UserTicket
from app.checkin import service as checkin


@strawberry.type
class CheckinMutation:
    @strawberry.mutation(description="Gate staff: VALID -> USED exactly once; a second scan is TICKET_ALREADY_USED.")
    async def check_in_ticket(self, info: Info, confirmation_code: str) -> CheckInPayload:
        return await answer(
            CheckInPayload,
            lambda: checkin.check_in(info.context.runtime, actor=info.context.viewer, confirmation_code=confirmation_code),
            lambda ticket: CheckInPayload(ticket=UserTicket.from_model(ticket)))
