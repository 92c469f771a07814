"""Gate check-in."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.checkin.types import CheckInPayload
from app.api.context import Info
from app.api.errors import answer
from app.api.orders.types import UserTicket
from app.checkin import service as checkin


@strawberry.type
class CheckinMutation:
    @strawberry.mutation(description="The event's organizer, staff assigned to it, or an admin: VALID -> USED "
                         "exactly once; a second scan is TICKET_ALREADY_USED.")
    async def check_in_ticket(
        self, info: Info, confirmation_code: str,
        event_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="The event at this gate: a ticket of another one is WRONG_EVENT and stays unused. "
            "Without it, the ticket's own event.")] = None,
    ) -> CheckInPayload:
        ctx = info.context
        return await answer(
            CheckInPayload,
            lambda: checkin.check_in(ctx.runtime, actor=ctx.viewer, confirmation_code=confirmation_code,
                                     event_id=None if event_id is None else str(event_id)),
            lambda ticket: CheckInPayload(ticket=UserTicket.from_model(ticket)))
