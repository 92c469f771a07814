"""Waitlist entries: WAITING -> OFFERED -> BOUGHT or LAPSED; LEFT from WAITING or OFFERED."""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from app.documents import Document
from app.queue.models import HeldItem


class WaitlistStatus(Enum):
    WAITING = "WAITING"
    # Stock is held for the buyer, as a checkout of their own, until offerExpiresAt.
    OFFERED = "OFFERED"
    BOUGHT = "BOUGHT"
    # The offer ended unused; it went to the next buyer.
    LAPSED = "LAPSED"
    LEFT = "LEFT"


# An entry in one of these is on the list; the others are records.
ON_LIST = (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)


class WaitlistEntry(Document):
    object_id_fields = frozenset({"eventId"})

    event_id: str = Field(alias="eventId")
    user_id: str = Field(alias="userId")
    # What the buyer wants: only stock that fits it all is offered.
    items: list[HeldItem]
    status: WaitlistStatus
    joined_at_utc: int = Field(alias="joinedAtUtc")
    offered_at_utc: int | None = Field(None, alias="offeredAtUtc")
    offer_expires_at_utc: int | None = Field(None, alias="offerExpiresAtUtc")
    ended_at_utc: int | None = Field(None, alias="endedAtUtc")

    def on_list(self) -> bool:
        return self.status in ON_LIST
