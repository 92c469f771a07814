"""The queue's queries, mutations and subscription: Q3, M3, M4, M6 and `queueUpdates`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from app.api.checkout.types import CheckoutPayload, CheckoutSession
from app.api.context import Info
from app.api.errors import answer
from app.api.orders.types import PurchaseItemInput
from app.api.queue.types import QueueDraw, QueueEntry, QueuePayload
from app.auth import require_user
from app.orders import service as orders
from app.queue import service as queue
from app.queue import watch


@strawberry.type
class QueueQuery:
    @strawberry.field(description="Q3: the viewer's queue entry for the event; null when the viewer never joined.")
    async def queue_position(self, info: Info, event_id: strawberry.ID) -> QueueEntry | None:
        rt = info.context.runtime
        user_id = require_user(info.context.viewer)
        entry = await queue.get_entry(rt, event_id=str(event_id), user_id=user_id)
        if entry is None:
            return None
        return QueueEntry.from_model(*await queue.seen(rt, entry))


    @strawberry.field(description="The event's pre-queue draw (its organizer or an admin): the seed and the entries "
                      "it was made of, from which anyone can compute the order again. Null before the draw.")
    async def queue_draw(self, info: Info, event_id: strawberry.ID) -> QueueDraw | None:
        draw = await queue.draw_record(info.context.runtime, actor=info.context.viewer, event_id=str(event_id))
        return None if draw is None else QueueDraw.from_model(draw)


@strawberry.type
class QueueMutation:
    @strawberry.mutation(
        description="M3: idempotent; while the viewer's entry is WAITING or ADMITTED it is returned unchanged. "
        "After COMPLETED, EXPIRED or CLOSED it starts a new place at the back (new seq); after LEFT, only once the "
        "cooldown is over."
    )
    async def join_queue(self, info: Info, event_id: strawberry.ID) -> QueuePayload:
        return await answer(
            QueuePayload, lambda: queue.join_queue(info.context.runtime, actor=info.context.viewer, event_id=str(event_id)),
            lambda joined: QueuePayload(entry=QueueEntry.from_model(*joined)))

    @strawberry.mutation(description="M4: marks the entry LEFT and starts the rejoin cooldown.")
    async def leave_queue(self, info: Info, event_id: strawberry.ID) -> QueuePayload:
        return await answer(
            QueuePayload, lambda: queue.leave_queue(info.context.runtime, actor=info.context.viewer, event_id=str(event_id)),
            lambda entry: QueuePayload(entry=QueueEntry.from_model(entry, None)))

    @strawberry.mutation(
        description="M6: needs the viewer's ADMITTED queue entry; at most CHECKOUT_LIMIT sessions per event hold "
        "a slot at once."
    )
    async def start_checkout(
        self, info: Info, event_id: strawberry.ID,
        items: Annotated[list[PurchaseItemInput] | None, strawberry.argument(
            description="What the buyer wants: its stock is taken now and held until the session "
            "ends, so the session's purchase of exactly these cannot fail for stock (SOLD_OUT or "
            "INSUFFICIENT_INVENTORY here if it is short). Checked as a purchase of them would be.")] = None,
    ) -> CheckoutPayload:
        wanted = None if items is None else [orders.PurchaseItem(str(i.ticket_type_id), i.quantity) for i in items]
        return await answer(
            CheckoutPayload, lambda: orders.start_checkout(info.context.runtime, actor=info.context.viewer,
                                                           event_id=str(event_id), items=wanted),
            lambda session: CheckoutPayload(session=CheckoutSession.from_model(session)))


@strawberry.type
class QueueSubscription:
    @strawberry.subscription(
        description="The viewer's own entry: its current state first, then every status change, and position "
        "changes at most once a second. Opened before the viewer has joined, it sends its first message when "
        "they join."
    )
    async def queue_updates(self, info: Info, event_id: strawberry.ID) -> AsyncGenerator[QueueEntry, None]:
        ctx = info.context
        return watch.watch_entry(ctx.runtime, feeds=ctx.feeds, actor=ctx.viewer, event_id=str(event_id),
                                 show=QueueEntry.from_model)
