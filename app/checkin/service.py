"""checkInTicket: VALID -> USED exactly once, even when two gates scan the same code at once,
and only by someone who answers for the ticket's event (docs/DECISIONS.md, Check-in).

Who may scan at an event: an admin, the organizer who owns it, and staff it assigned
(app/catalog/gate.py). A gate that names its event is refused FORBIDDEN there, whatever
the code; a scan that names no event is checked against the ticket's own event, and
one the scanner may not check in is answered exactly as an unknown code, so that a
scanner learns nothing about codes of events that are not theirs.
"""

from __future__ import annotations

import math

from app.auth import Viewer, require_role
from app.catalog import gate as gates
from app.catalog.models import EventGate
from app.errors import DomainError, ErrorCode, fail
from app.limits import Bucket
from app.orders import service as orders
from app.orders.models import TicketStatus, UserTicket
from app.runtime import Runtime
from app.timeutil import from_ms

MAX_CODE_LENGTH = 100


async def check_in(rt: Runtime, *, actor: Viewer, confirmation_code: str, event_id: str | None = None) -> UserTicket:
    """The event's organizer, its assigned staff, or an admin: let the ticket in, once; a few scans a second per account."""
    scanner = require_role(actor, "staff", "organizer")
    # Codes are unguessable only if guesses are few: each account gets its own small bucket.
    wait = await rt.limiter.take(f"checkin:{scanner}", 1, Bucket(rt.settings.checkin_per_second, rt.settings.checkin_burst))
    if wait:
        raise fail(ErrorCode.RATE_LIMITED, f"too many scans from this account; retry in {math.ceil(wait)} s")
    code = (confirmation_code or "").strip()
    if not code or len(code) > MAX_CODE_LENGTH:
        raise fail(ErrorCode.VALIDATION, f"must be 1 to {MAX_CODE_LENGTH} characters", "confirmationCode")
    if event_id is not None:
        gate = await gates.gate_of(rt, event_id=event_id, field="eventId")
        if not may_scan(actor, gate):
            raise fail(ErrorCode.FORBIDDEN, "you are not assigned to check tickets in at this event", "eventId")
        at_event = gate.event_id
    else:
        ticket = await orders.find_ticket(rt, confirmation_code=code)
        if ticket is None or not may_scan(actor, await gates.gate_of(rt, event_id=ticket.event_id)):
            raise _unknown_code()
        at_event = ticket.event_id
    # The event is in the guarded write's filter: the ticket is used at its own event, once.
    used = await orders.use_ticket(rt, confirmation_code=code, event_id=at_event)
    if used is not None:
        return used
    raise _refusal(await orders.find_ticket(rt, confirmation_code=code), at_event)


def may_scan(actor: Viewer, gate: EventGate) -> bool:
    """Admin; the organizer who owns the event; staff assigned to it."""
    if "admin" in actor.roles:
        return True
    if "organizer" in actor.roles and actor.user_id == gate.organizer_id:
        return True
    return "staff" in actor.roles and actor.user_id in gate.staff_ids


def _refusal(ticket: UserTicket | None, at_event: str) -> DomainError:
    if ticket is None:
        return _unknown_code()
    if ticket.event_id != at_event:
        return fail(ErrorCode.WRONG_EVENT, "this ticket is for another event", "confirmationCode")
    if ticket.status is TicketStatus.CANCELLED:
        return fail(ErrorCode.TICKET_CANCELLED, "this ticket was cancelled")
    when = from_ms(ticket.used_at_utc).isoformat(timespec="seconds").replace("+00:00", "Z") if ticket.used_at_utc else "earlier"
    return fail(ErrorCode.TICKET_ALREADY_USED, f"this ticket was already scanned at {when}")


def _unknown_code() -> DomainError:
    return fail(ErrorCode.NOT_FOUND, "no ticket has this confirmation code", "confirmationCode")
