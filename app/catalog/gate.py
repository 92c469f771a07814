"""An event's gate staff: whom its organizer assigned to check tickets in at it.

There is no users collection: a staff member is the `sub` of their token, so the
organizer assigns by that id. The list lives on the event (`gateStaff`, written by
the catalog's repository only, left out of every other event read). Who may scan
at the gate is the check-in's rule (app/checkin/service.py); this module keeps the list.
"""

from __future__ import annotations

from bson import ObjectId

from app.auth import Viewer, require_role
from app.catalog import repository as repo
from app.catalog.models import EventGate
from app.documents import parse_object_id
from app.errors import ErrorCode, fail, not_found
from app.runtime import Runtime

# Bounds the event document, and what a gate reads on every scan.
MAX_GATE_STAFF = 500
MAX_USER_ID_LENGTH = 200


async def gate_of(rt: Runtime, *, event_id: str, field: str | None = None) -> EventGate:
    """The event's organizer and assigned staff, or NOT_FOUND (also for a malformed id)."""
    gate = await repo.get_gate(rt.db, parse_object_id(event_id, "event", field))
    if gate is None:
        raise not_found("event", field)
    return gate


async def event_staff(rt: Runtime, *, actor: Viewer, event_id: str) -> EventGate:
    """Organizer who owns the event (or admin): the staff assigned to its gate."""
    return await _managed_gate(rt, actor, event_id)


async def assign_staff(rt: Runtime, *, actor: Viewer, event_id: str, user_id: str) -> EventGate:
    """Organizer who owns the event (or admin): `user_id` may check tickets in at it; twice is once."""
    gate = await _managed_gate(rt, actor, event_id)
    user = _checked_user_id(user_id)
    if not await repo.add_gate_staff(rt.db, ObjectId(gate.event_id), user, MAX_GATE_STAFF):
        gate = await gate_of(rt, event_id=gate.event_id, field="eventId")
        if user not in gate.staff_ids:
            raise fail(ErrorCode.VALIDATION, f"an event has at most {MAX_GATE_STAFF} gate staff; unassign one first", "userId")
    return await gate_of(rt, event_id=gate.event_id, field="eventId")


async def unassign_staff(rt: Runtime, *, actor: Viewer, event_id: str, user_id: str) -> EventGate:
    """Organizer who owns the event (or admin): `user_id` no longer checks tickets in at it (if they did)."""
    gate = await _managed_gate(rt, actor, event_id)
    await repo.remove_gate_staff(rt.db, ObjectId(gate.event_id), _checked_user_id(user_id))
    return await gate_of(rt, event_id=gate.event_id, field="eventId")


async def _managed_gate(rt: Runtime, actor: Viewer, event_id: str) -> EventGate:
    require_role(actor, "organizer")
    gate = await gate_of(rt, event_id=event_id, field="eventId")
    if actor.user_id != gate.organizer_id and "admin" not in actor.roles:
        raise fail(ErrorCode.FORBIDDEN, "only the organizer who created this event may manage its gate staff")
    return gate


def _checked_user_id(user_id: str) -> str:
    # Compared as given with tokens' `sub`: no trimming, which would name someone else.
    if not user_id or not user_id.strip() or len(user_id) > MAX_USER_ID_LENGTH:
        raise fail(ErrorCode.VALIDATION, f"must be a user id of 1 to {MAX_USER_ID_LENGTH} characters", "userId")
    return user_id
