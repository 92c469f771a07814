"""Fixtures of the workers suite: a clean Redis per test (make_api comes from tests/conftest.py)."""

from __future__ import annotations

import logging

import pytest
import redis

from app.embedded import EmbeddedRedis


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The module's real redis-server, emptied: no job of an earlier test (on another database) is left."""
    client = redis.Redis.from_url(redis_server.url())
    client.flushall()
    client.close()
    return redis_server.url()


@pytest.fixture(autouse=True)
def quiet_logs(caplog):
    """The repair warns about every correction it makes; the tests make them on purpose."""
    caplog.set_level(logging.CRITICAL, logger="app.repair")
