"""`make run`: the whole product on its embedded defaults, stopped together on Ctrl-C.

Starts SecantusDB and redis-server under DATA_DIR (unless MONGODB_URI /
REDIS_URL point elsewhere) and one arq worker, makes a dev JWT secret (unless
JWT_SECRET is set) and keeps it in DATA_DIR so tokens survive restarts,
prints the GraphiQL URL and an organizer token, then serves the API in this
process. A worker that dies is started again. Every child is stopped when the
API stops, and dies with this process if it is killed.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from contextlib import ExitStack

from app.auth import issue_token
from app.config import DEV_SECRET_FILE, Settings
from app.embedded import _die_with_parent, start_mongo, start_redis
from app.serve import serve

log = logging.getLogger("app.dev")

DEV_USER = "dev-organizer"


def dev_secret(settings: Settings) -> str:
    """JWT_SECRET, else the secret kept in DATA_DIR, made on first use."""
    existing = settings.resolve_jwt_secret()
    if existing:
        return existing
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / DEV_SECRET_FILE
    path.write_text(secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()


class WorkerSupervisor:
    """Keeps one arq worker running: a worker that dies is started again within a second."""

    CHECK_SECONDS = 0.5
    # A worker that dies this soon after starting is crash-looping: wait before the next try.
    SHORT_LIFE_SECONDS = 5.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stopping = threading.Event()
        self.proc = self._start()
        self._watcher = threading.Thread(target=self._watch, name="worker supervisor", daemon=True)
        self._watcher.start()

    def _start(self) -> subprocess.Popen:
        proc = start_worker(self._settings)
        self._started_at = time.monotonic()
        log.info("arq worker started (pid %s)", proc.pid)
        return proc

    def _watch(self) -> None:
        while not self._stopping.wait(self.CHECK_SECONDS):
            if self.proc.poll() is None:
                continue
            log.warning("arq worker (pid %s) exited with %s; starting another", self.proc.pid, self.proc.returncode)
            if time.monotonic() - self._started_at < self.SHORT_LIFE_SECONDS and self._stopping.wait(
                self.SHORT_LIFE_SECONDS
            ):
                return
            self.proc = self._start()

    def stop(self) -> None:
        """Stop watching, then stop the worker."""
        self._stopping.set()
        self._watcher.join()
        stop_process(self.proc)


def start_worker(settings: Settings) -> subprocess.Popen:
    env = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri or "",
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": settings.jwt_secret or "",
        "DATA_DIR": str(settings.data_dir),
    }
    # A session of its own, like the servers: Ctrl-C in the terminal reaches only this
    # supervisor, which stops the worker in order (a worker still importing would
    # otherwise die of the SIGINT with a traceback).
    return subprocess.Popen(
        [sys.executable, "-m", "app", "worker"], env=env, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_die_with_parent,
    )


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_dev(settings: Settings) -> int:
    secret = dev_secret(settings)
    with ExitStack() as children:
        if not settings.mongodb_uri:
            mongo = start_mongo(settings.data_dir / "mongo")
            children.callback(mongo.stop)
            log.info("embedded SecantusDB on port %s (data in %s)", mongo.port, settings.data_dir / "mongo")
            settings = settings.model_copy(update={"mongodb_uri": mongo.uri()})
        if not settings.redis_url:
            redis = start_redis(settings.data_dir / "redis")
            children.callback(redis.stop)
            log.info("embedded redis-server on port %s", redis.port)
            settings = settings.model_copy(update={"redis_url": redis.url()})
        settings = settings.model_copy(update={"jwt_secret": secret})
        children.callback(WorkerSupervisor(settings).stop)
        token = issue_token(secret, DEV_USER, ["organizer", "staff"])
        url = f"http://{settings.host}:{settings.port}/graphql"
        print(
            f"\n  GraphiQL:  {url}\n"
            f"  Dev token ({DEV_USER}, organizer + staff), already in GraphiQL's headers:\n"
            f"    Authorization: Bearer {token}\n"
            f"  More tokens: .venv/bin/python -m app token USER --role organizer\n"
            f"  Ctrl-C stops everything.\n",
            flush=True,
        )
        return serve(settings, graphiql_headers={"Authorization": f"Bearer {token}"}, development=True)
