"""Valid inputs to start from; tests override one field to make it wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api_client import ApiClient


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def days_from_now(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def venue_input(**overrides: Any) -> dict:
    return {
        "name": "Wembley Stadium", "address": "Wembley, London HA9 0WS", "city": "London", "country": "GB",
        "timezone": "Europe/London", "latitude": 51.556, "longitude": -0.2796, "capacity": 90000,
    } | overrides


def event_input(venue_id: str, **overrides: Any) -> dict:
    return {
        "title": "Renaissance World Tour", "description": "Live in concert.", "artistId": "artist-beyonce",
        "artistName": "Beyoncé", "venueId": venue_id, "startsAt": iso(days_from_now(30)),
        "endsAt": iso(days_from_now(30) + timedelta(hours=3)),
    } | overrides


def ticket_type_input(**overrides: Any) -> dict:
    return {
        "type": "GENERAL", "priceCents": 9900, "currency": "GBP", "quantityTotal": 100, "maxPerPurchase": 4,
        "saleStartsAt": iso(days_from_now(-1)), "saleEndsAt": iso(days_from_now(29)),
    } | overrides


async def create_venue(api: ApiClient, token: str, **overrides: Any) -> dict:
    return (await api.ok("CreateVenue", {"input": venue_input(**overrides)}, token))["venue"]


async def create_event(api: ApiClient, token: str, venue_id: str | None = None, **overrides: Any) -> dict:
    if venue_id is None:
        venue_id = (await create_venue(api, token))["id"]
    return (await api.ok("CreateEvent", {"input": event_input(venue_id, **overrides)}, token))["event"]


async def create_tickets(api: ApiClient, token: str, event_id: str, *types: dict) -> list[dict]:
    payload = await api.ok("CreateTickets", {"input": {"eventId": event_id, "ticketTypes": list(types)}}, token)
    return payload["ticketTypes"]


async def on_sale_event(api: ApiClient, token: str, *types: dict) -> tuple[dict, list[dict]]:
    """An event with ticket types on sale now (one GENERAL type of 100 unless given)."""
    event = await create_event(api, token)
    tickets = await create_tickets(api, token, event["id"], *(types or (ticket_type_input(),)))
    return event, tickets
