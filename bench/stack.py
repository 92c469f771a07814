"""The servers one rush runs against: a fresh embedded default, as `make run` starts it.

SecantusDB with `--sync-on-commit`, redis-server, one arq worker and one or more
`python -m app serve` processes, each configured only by the environment and on
free ports. Everything is stopped by its own process id when the block ends,
also on Ctrl-C or an error; each child also dies with this process (PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from app.embedded import EmbeddedMongo, EmbeddedRedis, _die_with_parent, free_port, start_mongo, start_redis

ROOT = Path(__file__).resolve().parents[1]
# A load generator on one address is what rate limits stop (app/limits.py); the bench measures the server.
UNLIMITED = {"RATE_LIMIT_PER_SECOND": "1e9", "RATE_LIMIT_BURST": "1e9"}
DATABASE = "ticketing"
# Settings of DESIGN section 3: none may leak in from the caller's environment.
SETTINGS_ENV = (
    "QUEUE_EXPIRY_SECONDS", "QUEUE_COOLDOWN_SECONDS", "CHECKOUT_EXPIRY_SECONDS", "CHECKOUT_LIMIT",
    "MAX_TICKETS_PER_PURCHASE", "PORT", "HOST", "MONGODB_URI", "REDIS_URL", "DATA_DIR", "CORS_ORIGINS",
    "JWT_SECRET", "METRICS_PORT",
)
READY_SECONDS = 60


@dataclass
class Child:
    """A `python -m app ...` process, its log, and its port if it serves one."""

    name: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def problems(self) -> list[str]:
        """Log lines that speak of a server fault."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]


@dataclass
class Stack:
    """The running servers of one rush."""

    mongo: EmbeddedMongo
    redis: EmbeddedRedis
    worker: Child | None = None
    apis: list[Child] = field(default_factory=list)

    @property
    def uri(self) -> str:
        """The product's database (the default name, as `make run` uses)."""
        return self.mongo.uri(DATABASE)

    @property
    def api_ports(self) -> list[int]:
        return [a.port for a in self.apis]

    def pids(self) -> dict[str, int]:
        """Every server process by role, for the CPU figures."""
        found = {"secantusdb": self.mongo.proc.pid, "redis": self.redis.proc.pid}
        if self.worker:
            found["worker"] = self.worker.proc.pid
        found |= {a.name: a.proc.pid for a in self.apis}
        return found

    def log_problems(self) -> list[str]:
        return [f"{c.name}: {line}" for c in [*self.apis, *([self.worker] if self.worker else [])] for line in c.problems()]


def _env(workdir: Path, name: str, settings: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV}
    return {**base, "PYTHONUNBUFFERED": "1", "DATA_DIR": str(workdir / f"{name}-data"), **settings}


def _spawn(workdir: Path, name: str, command: str, settings: dict[str, str], port: int | None = None) -> Child:
    env = _env(workdir, name, settings | ({"PORT": str(port)} if port else {}))
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches the bench only, which stops these in order
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - as app.embedded does
        )
    return Child(name, proc, log, port)


def stop_child(child: Child, timeout: float = 10) -> None:
    """SIGTERM by pid, then SIGKILL if it has not exited within `timeout` (aiohttp would wait 60 s)."""
    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait(10)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _wait(what: Child, done, timeout: float = READY_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if what.proc.poll() is not None:
            raise RuntimeError(f"{what.name} exited with {what.proc.returncode}:\n{what.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what.name} not ready within {timeout}s:\n{what.tail()}")
        time.sleep(0.1)


@contextmanager
def embedded_stack(workdir: Path, *, apis: int, checkout_limit: int, jwt_secret: str) -> Iterator[Stack]:
    """A fresh SecantusDB (durable), redis-server, one worker and `apis` API processes, ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as cleanup:
        mongo = start_mongo(workdir / "mongo", durable=True)
        cleanup.callback(mongo.kill)  # throwaway data: nobody reads it again
        redis = start_redis(workdir / "redis")
        cleanup.callback(redis.kill)
        stack = Stack(mongo, redis)
        # The worker admits and expires too: it must count slots against the same limit.
        settings = {
            "MONGODB_URI": stack.uri, "REDIS_URL": redis.url(), "JWT_SECRET": jwt_secret,
            "CHECKOUT_LIMIT": str(checkout_limit), **UNLIMITED,
        }
        stack.worker = _spawn(workdir, "worker", "worker", settings)
        cleanup.callback(stop_child, stack.worker)
        for n in range(apis):
            api = _spawn(workdir, f"api{n}", "serve", settings, port=free_port())
            cleanup.callback(stop_child, api)
            stack.apis.append(api)
        for api in stack.apis:
            _wait(api, lambda port=api.port: _ready(port))
        _wait(stack.worker, lambda: "worker ready" in stack.worker.tail(100_000))
        yield stack
