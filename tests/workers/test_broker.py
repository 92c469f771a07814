"""The Redis broker's batch publish: a closing tells thousands of subscribers in one round trip."""

from __future__ import annotations

import asyncio

from app.pubsub import InProcessBroker, RedisBroker


async def _receive_all(broker, channels: list[str]) -> dict[str, list[dict]]:
    received: dict[str, list[dict]] = {c: [] for c in channels}
    async with _subscribed(broker, channels) as queues:
        await broker.publish_many([(c, {"n": n}) for c in channels for n in (1, 2)])
        for channel, queue in queues.items():
            for _ in range(2):
                received[channel].append(await asyncio.wait_for(queue.get(), 5))
    return received


class _subscribed:
    """Subscribe to many channels at once (an async context manager of their queues)."""

    def __init__(self, broker, channels: list[str]) -> None:
        self._managers = {c: broker.subscribe(c) for c in channels}

    async def __aenter__(self) -> dict[str, asyncio.Queue]:
        return {c: await m.__aenter__() for c, m in self._managers.items()}

    async def __aexit__(self, *exc) -> None:
        for manager in self._managers.values():
            await manager.__aexit__(*exc)


async def test_publish_many_reaches_every_channel_in_order_through_redis(redis_url):
    broker = RedisBroker(redis_url)
    await broker.start()
    try:
        await asyncio.wait_for(broker.connected.wait(), 5)
        channels = [f"c{n}" for n in range(300)]
        received = await _receive_all(broker, channels)
        assert all(messages == [{"n": 1}, {"n": 2}] for messages in received.values())
    finally:
        await broker.close()


async def test_publish_many_in_process():
    received = await _receive_all(InProcessBroker(), ["a", "b"])
    assert received == {"a": [{"n": 1}, {"n": 2}], "b": [{"n": 1}, {"n": 2}]}


async def test_publications_made_at_once_share_one_connection_and_arrive_in_order(redis_url):
    """A rush publishes from hundreds of requests at the same moment. Each publish on its own
    took a pooled connection, opening a new one whenever all were busy, and a round trip of
    its own; together they go out in one pipeline on one connection."""
    import redis.asyncio as aioredis

    broker = RedisBroker(redis_url)
    await broker.start()
    probe = aioredis.Redis.from_url(redis_url)
    try:
        await asyncio.wait_for(broker.connected.wait(), 5)
        await broker.publish("warm-up", {"n": 0})  # the publishing connection exists
        opened = (await probe.info("stats"))["total_connections_received"]
        channels = [f"rush{n}" for n in range(200)]
        async with _subscribed(broker, channels) as queues:
            await asyncio.gather(*(broker.publish(c, {"n": n}) for c in channels for n in (1, 2)))
            received = {c: [await asyncio.wait_for(q.get(), 5) for _ in range(2)] for c, q in queues.items()}
        assert all(messages == [{"n": 1}, {"n": 2}] for messages in received.values())
        assert (await probe.info("stats"))["total_connections_received"] - opened <= 1  # the probe's own
    finally:
        await probe.aclose()
        await broker.close()


async def test_two_api_processes_spend_one_budget_through_redis(make_api, redis_url):
    """Rate limits are shared: a client cannot double its budget by spreading its requests
    over the API processes behind a load balancer."""
    from tests.conftest import make_token

    first = await make_api(redis_url=redis_url, rate_limit_per_second=0.5, rate_limit_burst=10)
    second = await make_api(redis_url=redis_url, rate_limit_per_second=0.5, rate_limit_burst=10)
    token = make_token("spreader")
    for n in range(10):
        assert "errors" not in await (first if n % 2 else second).post("{ __typename }", token=token)
    for api in (first, second):
        refused = await api.post("{ __typename }", token=token)
        assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_a_buyers_own_news_reaches_this_process_before_redis_echoes_it(redis_url):
    """The next buyer's ADMITTED must be pushed before the purchase that freed the slot is
    answered: an entry channel's message is in the local subscriber's inbox as soon as the
    publish returns; Redis's copy comes after it, the same message again."""
    from app.pubsub import channels

    broker = RedisBroker(redis_url)
    await broker.start()
    try:
        await asyncio.wait_for(broker.connected.wait(), 5)
        channel = channels.entry("e1", "buyer-1")
        async with broker.subscribe(channel) as inbox:
            await broker.publish(channel, {"entry": {"status": "ADMITTED"}})
            assert inbox.get_nowait() == {"entry": {"status": "ADMITTED"}}  # no waiting for the round trip
            assert await asyncio.wait_for(inbox.get(), 5) == {"entry": {"status": "ADMITTED"}}  # Redis's copy
    finally:
        await broker.close()
