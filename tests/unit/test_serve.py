"""`python -m app serve` runs the API tuned for a crowd (app/serve.py)."""

from __future__ import annotations

import gc

from aiohttp import web

from app import serve as serving
from app.config import Settings


def test_serve_tunes_the_collector_and_the_listen_backlog(monkeypatch):
    ran: dict = {}
    monkeypatch.setattr(web, "run_app", lambda app, **options: ran.update(options))
    before = gc.get_threshold()
    try:
        settings = Settings(mongodb_uri="mongodb://127.0.0.1:1/t", jwt_secret="x" * 40, _env_file=None)
        assert serving.serve(settings) == 0
        assert gc.get_threshold() == serving.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what start-up built is out of the collector's way
        assert ran["backlog"] == serving.BACKLOG
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
