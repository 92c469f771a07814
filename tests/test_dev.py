"""`make run` (python -m app dev): starts everything, serves, keeps data, stops it all on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def _start(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "JWT_SECRET", "REDIS_URL")}
    env |= {"DATA_DIR": str(data_dir), "PORT": str(port)}
    return subprocess.Popen(
        [sys.executable, "-m", "app", "dev"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _read_until_ready(proc: subprocess.Popen, port: int, timeout: float = 60) -> str:
    output = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        output += line
        if "Ctrl-C stops everything" in line:
            break
        assert proc.poll() is None, output
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return output
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"not ready in time:\n{output}")


def _graphql(port: int, query: str, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        state = next(line for line in open(f"/proc/{pid}/status") if line.startswith("State"))
    except (FileNotFoundError, StopIteration):
        return False
    return "Z" not in state  # a zombie has exited


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    return rest


def test_dev_serves_with_a_printed_token_keeps_data_and_stops_everything(tmp_path):
    port = free_port()
    proc = _start(tmp_path / "data", port)
    try:
        output = _read_until_ready(proc, port)
        token = re.search(r"Authorization: Bearer (\S+)", output).group(1)
        db_port = int(re.search(r"embedded SecantusDB on port (\d+)", output).group(1))
        redis_port = int(re.search(r"embedded redis-server on port (\d+)", output).group(1))
        worker_pid = int(re.search(r"arq worker started \(pid (\d+)\)", output).group(1))
        ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).read())
        assert ready["checks"] == {"database": "ok", "redis": "ok"}
        created = _graphql(
            port,
            'mutation { createVenue(input: {name: "Hall", city: "Oslo", country: "NO", timezone: "Europe/Oslo"})'
            " { venue { id } errors { code } } }",
            token,
        )
        assert created["data"]["createVenue"]["errors"] == []
        page = urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/graphql", headers={"Accept": "text/html"}), timeout=10
        ).read().decode()
        assert token in page, "GraphiQL opens with the dev token in its headers"
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert not _port_open(port) and not _port_open(db_port), "Ctrl-C must stop the API and the database"
    assert not _port_open(redis_port), "Ctrl-C must stop redis-server"
    assert not _alive(worker_pid), "Ctrl-C must stop the worker"

    proc = _start(tmp_path / "data", port)
    try:
        output = _read_until_ready(proc, port)
        same_token = re.search(r"Authorization: Bearer (\S+)", output).group(1)
        venues = _graphql(port, '{ venues(city: "Oslo") { name } }')
        assert venues["data"]["venues"] == [{"name": "Hall"}]
        # The dev secret is kept in DATA_DIR, so the first run's token still works.
        again = _graphql(
            port, 'mutation { createVenue(input: {name: "Hall 2", city: "Oslo", country: "NO", timezone: "Europe/Oslo"})'
            " { errors { code } } }", token,
        )
        assert again["data"]["createVenue"]["errors"] == [] and same_token
    finally:
        _stop(proc)
