"""/metrics: Prometheus text with the product's counters, gauges and request latency."""

from __future__ import annotations

import re

from app.queue import service as queue
from tests.conftest import make_token
from tests.factories import on_sale_event


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


async def test_metrics_count_what_happens(make_api, organizer):
    api = await make_api(checkout_limit=1)
    before = sample(await (await api.http.get("/metrics")).text(), "ticketing_admissions_total")
    event, _ = await on_sale_event(api, organizer)
    for user in ("m-1", "m-2"):
        await api.ok("JoinQueue", {"eventId": event["id"]}, make_token(user))
    await queue.sample_queue_lengths(api.runtime)

    response = await api.http.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert sample(text, "ticketing_admissions_total") == before + 1
    assert sample(text, "ticketing_queue_waiting") == 1
    assert sample(text, "ticketing_queue_admitted") == 1
    assert sample(text, "ticketing_http_request_seconds_count", '{method="POST",path="/graphql",status="200"}') >= 4
