"""Issue 10: the cron jobs' work follows activity, not history. With 100,000 events,
refresh_sale_statuses ran for 80+ s (two queries per event ever created) and the repair
recounted every event; 20,000 events at rest must not change what a job sends."""

from __future__ import annotations

from collections import Counter

from bson import ObjectId

from app.config import Settings
from app.server import create_app
from app.timeutil import now_ms
from tests.api_client import ApiClient
from tests.conftest import JWT_SECRET, make_token
from tests.factories import buy, checkout, on_sale_event
from tests.workers.test_jobs import ctx_of
from workers import jobs

AT_REST = 20_000


def past_event(n: int, now: int) -> dict:
    """An event of an earlier season: its sale over, its stored status never refreshed since."""
    start = now - (n + 10) * 86_400_000
    return {"_id": ObjectId(), "title": f"Past {n}", "status": "ON_SALE", "startAtUtc": start, "endAtUtc": start + 3600_000,
            "artistId": f"a{n % 50}", "artistName": "Someone", "organizerId": "org-1", "dedupeKey": f"past:{n}",
            "venue": {"venueId": str(ObjectId()), "name": "Hall", "city": "Oslo", "country": "NO", "timezone": "Europe/Oslo"},
            "createdAtUtc": start - 86_400_000, "activeCheckouts": 0}


async def commands_of_each_job(api: ApiClient, counter) -> dict[str, Counter]:
    ctx = ctx_of(api)
    spent = {}
    for name, job in (("sweep_expired", jobs.sweep_expired), ("refresh_sale_statuses", jobs.refresh_sale_statuses),
                      ("repair", jobs.repair)):
        counter.reset()
        await job(ctx)
        spent[name] = Counter(counter.targets)
    return spent


async def test_each_cron_job_costs_the_same_with_20000_events_at_rest(aiohttp_client, mongo_uri, command_counter, organizer):
    app = create_app(Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, _env_file=None),
                     db_listeners=[command_counter], sweep=False)
    api = ApiClient(await aiohttp_client(app), app)
    # Some activity of today: a sale with a purchase, so each job has something to look at.
    event, (general,) = await on_sale_event(api, organizer)
    buyer = make_token("today")
    await checkout(api, buyer, event["id"])
    await buy(api, buyer, event["id"], [(general["id"], 1)], "today-1")
    before = await commands_of_each_job(api, command_counter)

    now = now_ms()
    docs = [past_event(n, now) for n in range(AT_REST)]
    for start in range(0, AT_REST, 2_000):
        await api.db.events.insert_many(docs[start:start + 2_000])
    after = await commands_of_each_job(api, command_counter)

    assert after == before, {name: (before[name], after[name]) for name in before if after[name] != before[name]}
    assert all(sum(spent.values()) < 40 for spent in after.values()), after
