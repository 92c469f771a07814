"""Typed keys of what the aiohttp application holds for its handlers."""

from __future__ import annotations

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings
from app.live import EventFeeds
from app.pubsub import Broker
from app.runtime import Runtime

SETTINGS = web.AppKey("settings", Settings)
JWT_SECRET = web.AppKey("jwt_secret", str)
DB = web.AppKey("db", AsyncDatabase)
MONGO_CLIENT = web.AppKey("mongo_client", AsyncMongoClient)
DB_LISTENERS = web.AppKey("db_listeners", list)
BROKER = web.AppKey("broker", Broker)
RUNTIME = web.AppKey("runtime", Runtime)
FEEDS = web.AppKey("feeds", EventFeeds)
# How to reach the workers' scheduler at REDIS_URL (None: no workers to schedule for).
CONNECT_SCHEDULER = web.AppKey("connect_scheduler", object)
