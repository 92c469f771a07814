"""The DateTime scalar: ISO-8601 instants, always UTC with milliseconds on the way out.

On the way in, a time without an offset is accepted by the scalar and turned
into a VALIDATION `UserError` naming its field by the service, so that the
client learns which input was at fault; a string that is no date at all is
refused by the scalar itself (a top-level VALIDATION error).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NewType

import strawberry

from app.timeutil import from_ms


def serialize_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO-8601 string, e.g. 2027-03-01T19:30:00Z")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"'{value[:40]}' is not an ISO-8601 date-time, e.g. 2027-03-01T19:30:00Z") from None


DateTime = NewType("DateTime", datetime)

DATETIME_SCALAR = strawberry.scalar(
    name="DateTime",
    description="An instant in UTC, ISO-8601, e.g. 2027-03-01T19:30:00.000Z.",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)


def ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)
