"""The event a rush is for, published through the API by an organizer, as a real one would."""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.auth import issue_token
from bench.documents import document


@dataclass(frozen=True)
class Sale:
    event_id: str
    ticket_type_id: str
    tickets: int


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def mutate(port: int, name: str, variables: dict, token: str) -> dict:
    """Send graphql/**/<name>.graphql; the payload, which must carry no error of any kind."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": document(name), "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise RuntimeError(f"{name}: {body['errors']}")
    (payload,) = body["data"].values()
    if payload["errors"]:
        raise RuntimeError(f"{name}: {payload['errors']}")
    return payload


def seed_sale(port: int, jwt_secret: str, tickets: int) -> Sale:
    """A venue, an event a month ahead, and one GENERAL ticket type of `tickets` on sale now."""
    organizer = issue_token(jwt_secret, "bench-organizer", ["organizer"], 3600)
    now = datetime.now(UTC)
    venue = mutate(port, "CreateVenue", {"input": {
        "name": "Wembley Stadium", "address": "Wembley, London HA9 0WS", "city": "London", "country": "GB",
        "timezone": "Europe/London", "latitude": 51.556, "longitude": -0.2796, "capacity": 90000,
    }}, organizer)["venue"]
    starts = now + timedelta(days=30)
    event = mutate(port, "CreateEvent", {"input": {
        "title": f"Rush {uuid.uuid4().hex[:6]}", "description": "make bench", "artistId": "artist-bench",
        "artistName": "The Benchmarks", "venueId": venue["id"], "startsAt": _iso(starts),
        "endsAt": _iso(starts + timedelta(hours=3)),
    }}, organizer)["event"]
    (ticket_type,) = mutate(port, "CreateTickets", {"input": {"eventId": event["id"], "ticketTypes": [{
        "type": "GENERAL", "priceCents": 9900, "currency": "GBP", "quantityTotal": tickets, "maxPerPurchase": 4,
        "saleStartsAt": _iso(now - timedelta(days=1)), "saleEndsAt": _iso(now + timedelta(days=29)),
    }]}}, organizer)["ticketTypes"]
    return Sale(event["id"], ticket_type["id"], tickets)
