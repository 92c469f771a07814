"""Issue 10: a budget per user, and per client address for anonymous callers; RATE_LIMITED with
a retry-after when it is spent; check-in scans get their own, tighter budget."""

from __future__ import annotations

from tests.conftest import make_token
from tests.factories import codes, create_event, gate_staff

CHEAP = "{ __typename }"  # costs 1 point


async def test_a_user_who_spends_the_budget_is_told_when_to_come_back_and_others_are_not(make_api):
    api = await make_api(rate_limit_per_second=0.5, rate_limit_burst=20)
    greedy, patient = make_token("greedy"), make_token("patient")
    for _ in range(20):
        assert "errors" not in await api.post(CHEAP, token=greedy)
    response = await api.http.post("/graphql", json={"query": CHEAP}, headers={"Authorization": f"Bearer {greedy}"})
    body = await response.json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfterSeconds"] >= 1
    assert int(response.headers["Retry-After"]) == error["extensions"]["retryAfterSeconds"]
    assert "errors" not in await api.post(CHEAP, token=patient)  # a bucket per user
    assert "errors" not in await api.post(CHEAP)  # anonymous callers spend their address's


async def test_an_operation_spends_what_it_costs(make_api):
    """Points, not requests: a search of 100 costs a hundred times a lookup by id."""
    api = await make_api(rate_limit_per_second=0.5, rate_limit_burst=300)
    token = make_token("searcher")
    search = '{ searchEvents(query: "rock", limit: 100) { id venue { name } } }'
    assert "errors" not in await api.post(search, token=token)  # 220 of 300
    refused = await api.post(search, token=token)
    assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "errors" not in await api.post(CHEAP, token=token)  # what is left still pays for a cheap one


async def test_check_in_guesses_get_a_few_a_second(make_api, organizer):
    """The review: a staff token sent 300 guesses at 181 a second, all answered."""
    api = await make_api(checkin_per_second=1, checkin_burst=5)
    event = await create_event(api, organizer)
    staff = await gate_staff(api, organizer, event["id"], "gate-guesser")
    answers = [codes(await api.mutate("CheckInTicket", {"confirmationCode": f"GUESS-{n:04}", "eventId": event["id"]}, staff))
               for n in range(8)]
    assert answers[:5] == [["NOT_FOUND"]] * 5
    assert answers[5:] == [["RATE_LIMITED"]] * 3


async def test_two_api_processes_spend_one_budget_held_in_redis(make_api, redis_server):
    """The budget is the user's, not each process's: two apps on one Redis share it."""
    first, second = [await make_api(redis_url=redis_server.url(), rate_limit_per_second=0.5, rate_limit_burst=10)
                     for _ in range(2)]
    token = make_token("everywhere")
    answers = [await app.post(CHEAP, token=token) for _ in range(6) for app in (first, second)]
    assert ["errors" in a for a in answers].count(False) == 10, answers
    assert answers[-1]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
