"""`python -m app worker`: one arq worker, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from arq.worker import Worker
from prometheus_client import start_http_server

from app.config import Settings
from workers.settings import worker_settings

log = logging.getLogger("workers")


def run_worker(settings: Settings) -> int:
    if not settings.redis_url or not settings.mongodb_uri:
        log.error("the worker needs REDIS_URL and MONGODB_URI")
        return 2
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)
    Worker(**worker_settings(settings)).run()
    return 0
