"""Checkout sessions: ACTIVE until a purchase (COMPLETED) or their expiresAt (EXPIRED).

An ACTIVE session lives on its queue entry; this is also the shape of its record,
written to checkoutSessions when it ends (app/checkout/service.py).
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from app.documents import Document
from app.queue.models import HeldItem


class CheckoutStatus(Enum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"


class CheckoutSession(Document):
    object_id_fields = frozenset({"eventId", "queueEntryId"})

    event_id: str = Field(alias="eventId")
    user_id: str = Field(alias="userId")
    queue_entry_id: str = Field(alias="queueEntryId")
    status: CheckoutStatus
    created_at_utc: int = Field(alias="createdAtUtc")
    expires_at_utc: int = Field(alias="expiresAtUtc")
    ended_at_utc: int | None = Field(None, alias="endedAtUtc")
    # The stock it held (app/queue/holds.py), if its start named what the buyer wants.
    held_items: list[HeldItem] | None = Field(None, alias="heldItems")
