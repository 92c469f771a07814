"""Data written through the API survives a restart of the embedded server."""

from __future__ import annotations

from app.config import Settings
from app.embedded import start_mongo
from app.server import create_app
from tests.api_client import ApiClient
from tests.conftest import JWT_SECRET, make_token
from tests.factories import create_event, create_tickets, ticket_type_input


async def test_catalog_survives_a_restart_of_the_embedded_server(aiohttp_client, tmp_path):
    organizer = make_token("org-1", "organizer")
    storage = tmp_path / "mongo"
    server = start_mongo(storage, durable=True)
    try:
        client = await aiohttp_client(create_app(Settings(mongodb_uri=server.uri("persist"), jwt_secret=JWT_SECRET)))
        api = ApiClient(client, client.app)
        event = await create_event(api, organizer)
        await create_tickets(api, organizer, event["id"], ticket_type_input())
        await client.close()
    finally:
        server.stop()

    server = start_mongo(storage, durable=True)
    try:
        client = await aiohttp_client(create_app(Settings(mongodb_uri=server.uri("persist"), jwt_secret=JWT_SECRET)))
        api = ApiClient(client, client.app)
        read = (await api.data("Event", {"id": event["id"]}))["event"]
        assert read["title"] == event["title"]
        assert read["venue"] == event["venue"]
        assert [t["type"] for t in read["ticketTypes"]] == ["GENERAL"]
        # Indexes are re-ensured idempotently on start: the dedupe guard still holds.
        again = await api.mutate(
            "CreateEvent",
            {"input": {"title": event["title"], "artistId": event["artistId"], "artistName": event["artistName"],
                       "venueId": event["venue"]["venueId"], "startsAt": event["startsAt"]}},
            organizer,
        )
        assert [e["code"] for e in again["errors"]] == ["DUPLICATE_EVENT"]
    finally:
        server.kill()
