"""GraphQL types of the waiting queue (app/queue)."""

from __future__ import annotations

from enum import Enum

import strawberry

from app.api.errors import UserError
from app.api.scalars import DateTime, ms_to_datetime
from app.queue import models as queue_models
from app.queue import prequeue
from app.timeutil import from_ms

_QUEUE_STATUS_DESCRIPTIONS = {
    "PRE_QUEUE": "Joined the event's pre-queue before the sale opened: no place yet (seq 0). At the opening the "
                 "order of every pre-queued buyer is drawn at random, and the entry becomes WAITING or ADMITTED.",
    "ADMITTED": "Holds a checkout slot: may start (or has started) checkout.",
    "COMPLETED": "The buyer's checkout ended in a purchase; the slot went to the next buyer.",
    "CLOSED": "The queue closed before this buyer could buy: the event sold out or was cancelled. The buyer "
              "may join again if it goes back on sale.",
}
# The domain's members, with the descriptions the API shows (a GraphQL enum of its own, since
# Strawberry takes value descriptions only from the enum class it wraps).
QueueStatus = strawberry.enum(Enum("QueueStatus", {  # type: ignore[misc]
    m.name: strawberry.enum_value(m.value, description=_QUEUE_STATUS_DESCRIPTIONS.get(m.name))
    for m in queue_models.QueueStatus
}), name="QueueStatus")


@strawberry.type
class QueueEntry:
    event_id: strawberry.ID
    user_id: strawberry.ID
    seq: int = strawberry.field(description="Allocated from the event's atomic counter: strictly increasing per event "
                                "(0 while PRE_QUEUE: the draw at the opening gives it).")
    status: QueueStatus
    position: int | None = strawberry.field(description="1-based place among WAITING entries of the event; null unless WAITING.")
    joined_at: DateTime  # type: ignore[valid-type]
    admitted_at: DateTime | None  # type: ignore[valid-type]
    expires_at: DateTime  # type: ignore[valid-type]
    cooldown_until: DateTime | None  # type: ignore[valid-type]
    estimated_wait_seconds: int | None = strawberry.field(
        description="About how many seconds until this WAITING entry's turn, from its position and how fast the "
        "event's queue moved in the last minute; null unless WAITING, or while there is no pace to go on. "
        "Pushed on queueUpdates with position changes.")

    @classmethod
    def from_model(cls, e: queue_models.QueueEntry, position: int | None, wait_seconds: int | None = None) -> QueueEntry:
        waiting = e.status is queue_models.QueueStatus.WAITING
        return cls(
            event_id=strawberry.ID(e.event_id), user_id=strawberry.ID(e.user_id), seq=e.seq,
            status=QueueStatus(e.status.value), position=position if waiting else None,
            joined_at=from_ms(e.joined_at_utc), admitted_at=ms_to_datetime(e.admitted_at_utc),
            expires_at=from_ms(e.expires_at_utc), cooldown_until=ms_to_datetime(e.cooldown_until_utc),
            estimated_wait_seconds=wait_seconds if waiting else None,
        )


@strawberry.type(description="The draw of an event's pre-queue, kept for audit: `entryIds` in id order, shuffled "
                 "with Python's random.Random(seed), give the drawn order; the first of them got seq firstSeq.")
class QueueDraw:
    event_id: strawberry.ID
    state: str = strawberry.field(description="DRAWING while it is being written, then DRAWN.")
    seed: str = strawberry.field(description="The draw's random seed (a 63-bit integer, as a string).")
    entries_hash: str | None = strawberry.field(description="SHA-256 of the pre-queued entry ids, in id order, "
                                                "joined by commas.")
    entry_ids: list[strawberry.ID] = strawberry.field(description="The pre-queued entries drawn, in id order.")
    first_seq: int | None
    drawn_at: DateTime | None  # type: ignore[valid-type]

    @classmethod
    def from_model(cls, d: prequeue.Draw) -> QueueDraw:
        return cls(event_id=strawberry.ID(d.event_id), state=d.state, seed=str(d.seed), entries_hash=d.entries_hash,
                   entry_ids=[strawberry.ID(i) for i in d.entry_ids], first_seq=d.first_seq,
                   drawn_at=ms_to_datetime(d.drawn_at_utc))


@strawberry.type
class QueuePayload:
    entry: QueueEntry | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
