"""What the sale-day services need at hand: the database, the settings and the broker."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings
from app.pubsub import Broker


@dataclass(frozen=True)
class Runtime:
    db: AsyncDatabase
    settings: Settings
    broker: Broker
