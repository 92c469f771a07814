"""An event's gate staff (app/catalog/gate.py): assigned and read by the organizer who owns it."""

from __future__ import annotations

import strawberry

from app.api.context import Info
from app.api.errors import UserError, answer
from app.catalog import gate as gates
from app.catalog.models import EventGate


@strawberry.type(description="The staff assigned to check tickets in at an event (besides its organizer and admins).")
class EventStaff:
    event_id: strawberry.ID
    user_ids: list[strawberry.ID] = strawberry.field(description="Their user ids: the `sub` of their tokens.")

    @classmethod
    def from_model(cls, gate: EventGate) -> EventStaff:
        return cls(event_id=strawberry.ID(gate.event_id), user_ids=[strawberry.ID(u) for u in gate.staff_ids])


@strawberry.type
class EventStaffPayload:
    staff: EventStaff | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class GateQuery:
    @strawberry.field(description="Organizer who owns the event (or admin): the staff assigned to its gate.")
    async def event_staff(self, info: Info, event_id: strawberry.ID) -> EventStaff:
        ctx = info.context
        return EventStaff.from_model(await gates.event_staff(ctx.runtime, actor=ctx.viewer, event_id=str(event_id)))


@strawberry.type
class GateMutation:
    @strawberry.mutation(description="Organizer who owns the event (or admin): this user (a token's sub) may check "
                         "tickets in at the event with the staff role; assigning twice is once.")
    async def assign_event_staff(self, info: Info, event_id: strawberry.ID, user_id: strawberry.ID) -> EventStaffPayload:
        ctx = info.context
        return await answer(EventStaffPayload, lambda: gates.assign_staff(
            ctx.runtime, actor=ctx.viewer, event_id=str(event_id), user_id=str(user_id)), _built)

    @strawberry.mutation(description="Organizer who owns the event (or admin): this user no longer checks tickets in "
                         "at the event; unassigning someone not assigned changes nothing.")
    async def unassign_event_staff(self, info: Info, event_id: strawberry.ID, user_id: strawberry.ID) -> EventStaffPayload:
        ctx = info.context
        return await answer(EventStaffPayload, lambda: gates.unassign_staff(
            ctx.runtime, actor=ctx.viewer, event_id=str(event_id), user_id=str(user_id)), _built)


def _built(gate: EventGate) -> EventStaffPayload:
    return EventStaffPayload(staff=EventStaff.from_model(gate))
