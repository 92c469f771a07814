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


def test_serve_refuses_a_missing_or_weak_secret_and_never_reads_the_dev_secret(monkeypatch, tmp_path, caplog):
    """Issue 10: with JWT_SECRET=a, `serve` started and accepted tokens signed with "a"; with none
    it quietly used the dev secret `make run` keeps in DATA_DIR."""
    monkeypatch.setattr(web, "run_app", lambda app, **options: None)
    (tmp_path / "dev-jwt-secret").write_text("d" * 43)  # what `make run` leaves behind
    uri = "mongodb://127.0.0.1:1/t"
    for secret in (None, "", "a", "x" * (serving.MIN_SECRET_BYTES - 1)):
        caplog.clear()
        settings = Settings(mongodb_uri=uri, jwt_secret=secret, data_dir=tmp_path, _env_file=None)
        assert serving.serve(settings) == 2, secret
        assert "JWT_SECRET" in caplog.text
    assert serving.weak_secret("é" * 16) is None  # bytes, not characters
