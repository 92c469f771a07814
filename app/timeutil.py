"""Instants: the API speaks aware datetimes, storage keeps UTC epoch milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    """The current instant in UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def to_ms(value: datetime) -> int:
    """An aware datetime as UTC epoch milliseconds (naive input is a caller bug)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return (value - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """UTC epoch milliseconds as an aware UTC datetime."""
    return EPOCH + ms * _MS
