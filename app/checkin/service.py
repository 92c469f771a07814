"""checkInTicket: VALID -> USED exactly once, even when two gates scan the same code at once."""

from __future__ import annotations

import math

from app.auth import Viewer, require_role
from app.errors import ErrorCode, fail
from app.limits import Bucket
from app.orders import service as orders
from app.orders.models import TicketStatus, UserTicket
from app.runtime import Runtime
from app.timeutil import from_ms

MAX_CODE_LENGTH = 100


async def check_in(rt: Runtime, *, actor: Viewer, confirmation_code: str) -> UserTicket:
    """Gate staff (or admin): let the ticket in, once; a few scans a second per account."""
    staff = require_role(actor, "staff")
    # Codes are unguessable only if guesses are few: each account gets its own small bucket.
    wait = await rt.limiter.take(f"checkin:{staff}", 1, Bucket(rt.settings.checkin_per_second, rt.settings.checkin_burst))
    if wait:
        raise fail(ErrorCode.RATE_LIMITED, f"too many scans from this account; retry in {math.ceil(wait)} s")
    code = (confirmation_code or "").strip()
    if not code or len(code) > MAX_CODE_LENGTH:
        raise fail(ErrorCode.VALIDATION, f"must be 1 to {MAX_CODE_LENGTH} characters", "confirmationCode")
    used = await orders.use_ticket(rt, confirmation_code=code)
    if used is not None:
        return used
    ticket = await orders.find_ticket(rt, confirmation_code=code)
    if ticket is None:
        raise fail(ErrorCode.NOT_FOUND, "no ticket has this confirmation code", "confirmationCode")
    if ticket.status is TicketStatus.CANCELLED:
        raise fail(ErrorCode.TICKET_CANCELLED, "this ticket was cancelled")
    when = from_ms(ticket.used_at_utc).isoformat(timespec="seconds").replace("+00:00", "Z") if ticket.used_at_utc else "earlier"
    raise fail(ErrorCode.TICKET_ALREADY_USED, f"this ticket was already scanned at {when}")
