"""Queue entries: WAITING -> ADMITTED -> COMPLETED, or EXPIRED / LEFT / CLOSED on the way."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from app.documents import Document


class QueueStatus(Enum):
    # Joined the pre-queue (app/queue/prequeue.py): no seq yet (0) until the draw at the opening.
    PRE_QUEUE = "PRE_QUEUE"
    WAITING = "WAITING"
    ADMITTED = "ADMITTED"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"
    LEFT = "LEFT"
    # The queue closed (sell-out or cancellation) before this buyer could buy.
    CLOSED = "CLOSED"


# An entry in one of these holds its place; the others are finished records.
LIVE = (QueueStatus.PRE_QUEUE, QueueStatus.WAITING, QueueStatus.ADMITTED)


class HoldState(Enum):
    """The stock a checkout holds: HELD until it is BOUGHT by the session's purchase, or
    RETURNED to the sale when the checkout ends unused (each move one guarded write)."""

    HELD = "HELD"
    BOUGHT = "BOUGHT"
    RETURNED = "RETURNED"


class HeldItem(BaseModel):
    """Tickets of one type that a checkout holds."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    ticket_type_id: str = Field(alias="ticketTypeId")
    quantity: int


class QueueEntry(Document):
    object_id_fields = frozenset({"eventId", "sessionId", "holdOrderId"})

    event_id: str = Field(alias="eventId")
    user_id: str = Field(alias="userId")
    seq: int
    status: QueueStatus
    joined_at_utc: int = Field(alias="joinedAtUtc")
    admitted_at_utc: int | None = Field(None, alias="admittedAtUtc")
    expires_at_utc: int = Field(alias="expiresAtUtc")
    cooldown_until_utc: int | None = Field(None, alias="cooldownUntilUtc")
    # The checkout session started from this admission, if any, and when. An ACTIVE session
    # lives here; its record in checkoutSessions is written when it ends (app/checkout).
    session_id: str | None = Field(None, alias="sessionId")
    checkout_started_at_utc: int | None = Field(None, alias="checkoutStartedAtUtc")
    # The stock the checkout holds, if it named what it wants when it started (app/queue/holds.py),
    # and the order that bought it.
    held_items: list[HeldItem] | None = Field(None, alias="heldItems")
    hold_state: HoldState | None = Field(None, alias="holdState")
    hold_order_id: str | None = Field(None, alias="holdOrderId")
    # The waitlist entry whose offer this admission is (app/waitlist), if it is one.
    offer_of: str | None = Field(None, alias="offerOf")
    ended_at_utc: int | None = Field(None, alias="endedAtUtc")
    # Earlier places of this buyer in this event's queue, newest last (support's "what happened").
    history: list[dict] = Field(default_factory=list)

    def is_live(self) -> bool:
        return self.status in LIVE

    @property
    def holds(self) -> bool:
        """Does its checkout hold stock not yet bought?"""
        return self.hold_state is HoldState.HELD

    @property
    def claim(self) -> int:
        """The claimable stock this entry's end gives back (app/catalog/turns.py): what it holds;
        one ticket if its turn came and it holds nothing; nothing once its hold was bought."""
        if self.hold_state is HoldState.HELD:
            return sum(i.quantity for i in self.held_items or ())
        return 0 if self.hold_state is not None else 1

    @property
    def progress(self) -> tuple[int, int, int]:
        """How far along this entry is: later places, then later joins, then later statuses,
        compare higher.

        Change messages can arrive out of order (two requests publish at once);
        a message whose progress is below what a client already has is stale.
        The join time tells a place apart from an earlier one with the same seq:
        every pre-queue place has seq 0 until the draw.
        """
        return self.seq, self.joined_at_utc, _STATUS_RANK[self.status]


_STATUS_RANK = {
    QueueStatus.PRE_QUEUE: -1,
    QueueStatus.WAITING: 0,
    QueueStatus.ADMITTED: 1,
    QueueStatus.COMPLETED: 2,
    QueueStatus.EXPIRED: 2,
    QueueStatus.LEFT: 2,
    QueueStatus.CLOSED: 2,
}
