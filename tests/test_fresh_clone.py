"""`make run` in a fresh clone, as a new user meets it: nothing set but PORT, Ctrl-C stops it all.

The clone is made with `git clone` of this repository; changes not yet
committed in the tree under test are laid over it, so that the test checks
the tree it runs in (in CI, a clean clone, they are none).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from app.config import Settings
from app.embedded import free_port

pytestmark = pytest.mark.slow  # installs a venv and starts the whole product twice: `make test-fast` leaves it out

ROOT = Path(__file__).resolve().parent.parent
# First run: the Makefile makes .venv and installs the project (about 30 s here).
FIRST_START_SECONDS = 300
VENUE = 'mutation { createVenue(input: {name: "Hall", city: "Oslo", country: "NO", timezone: "Europe/Oslo"}) { venue { id } errors { code } } }'


def fresh_clone(target: Path) -> Path:
    """`git clone` of this repository, with the tree's uncommitted changes laid over it."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=120)

    def listed(*command: str) -> list[str]:
        out = subprocess.run(["git", *command, "-z"], cwd=ROOT, check=True, capture_output=True).stdout
        return [name for name in out.decode().split("\0") if name]

    # Staged or not, against HEAD (what the clone has), and files git does not know yet.
    changed = listed("diff", "--name-only", "--diff-filter=d", "HEAD") + listed("ls-files", "--others", "--exclude-standard")
    for name in changed:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    for name in listed("diff", "--name-only", "--diff-filter=D", "HEAD"):
        (target / name).unlink(missing_ok=True)
    return target


def user_environment(port: int) -> dict[str, str]:
    """The machine's environment with none of the product's settings, but PORT."""
    product = {name.upper() for name in Settings.model_fields} | {"VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in product}
    return env | {"PORT": str(port)}


def make_run(clone: Path, port: int) -> subprocess.Popen:
    """`make run` in its own process group, as a terminal runs it (Ctrl-C reaches the group)."""
    return subprocess.Popen(
        ["make", "run"], cwd=clone, env=user_environment(port), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def read_until_ready(proc: subprocess.Popen, port: int, timeout: float) -> str:
    """make run's output up to its banner, once /readyz answers 200."""
    output = ""
    deadline = time.monotonic() + timeout
    while "Ctrl-C stops everything" not in output:
        line = proc.stdout.readline()
        output += line
        assert line or proc.poll() is None, f"make run exited with {proc.poll()}:\n{output}"
        assert time.monotonic() < deadline, f"no banner within {timeout}s:\n{output}"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return output
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"not ready in time:\n{output}")


def graphql(port: int, query: str, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def worker_check(port: int) -> str:
    """What /readyz says of the workers."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
        return json.loads(r.read())["checks"]["worker"]


def wait_for(probe, timeout: float, what: str):
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.1)
    return found


def workers_of(pid: int) -> set[int]:
    """The `python -m app worker` processes below `pid`."""
    found = set()
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        if command[-2:] == [b"app", b"worker"]:
            found.add(child)
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children started in sessions of their own included)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = next(line for line in open(f"/proc/{pid}/status") if line.startswith("State"))
    except (FileNotFoundError, StopIteration):
        return False
    return "Z" not in state  # a zombie has exited


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def ctrl_c(proc: subprocess.Popen) -> str:
    """What a terminal does on Ctrl-C: SIGINT to the foreground process group; the output after it."""
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=60)[0]


def stopped_cleanly(proc: subprocess.Popen, last_words: str) -> bool:
    """make itself dies of the SIGINT, as make does; the product must stop without a traceback."""
    return proc.returncode in (0, -signal.SIGINT) and "Traceback" not in last_words


def test_make_run_in_a_fresh_clone_serves_keeps_data_and_stops_everything(tmp_path):
    clone = fresh_clone(tmp_path / "clone")
    port = free_port()

    proc = make_run(clone, port)
    try:
        output = read_until_ready(proc, port, FIRST_START_SECONDS)
        assert json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()) == {"status": "ok"}
        ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).read())
        assert ready["checks"]["database"] == ready["checks"]["redis"] == "ok"
        token = re.search(r"Authorization: Bearer (\S+)", output).group(1)
        assert graphql(port, VENUE, token)["data"]["createVenue"]["errors"] == []
        page = urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/graphql", headers={"Accept": "text/html"}), timeout=10
        ).read().decode()
        assert token in page, "GraphiQL opens with the dev token in its headers"
        children = descendants(proc.pid)
        db_port = int(re.search(r"embedded SecantusDB on port (\d+)", output).group(1))
        redis_port = int(re.search(r"embedded redis-server on port (\d+)", output).group(1))
        worker_pid = int(re.search(r"arq worker started \(pid (\d+)\)", output).group(1))
        assert worker_pid in children and len(children) >= 4, "make, the API, SecantusDB, redis-server, the worker"
    finally:
        last_words = ctrl_c(proc)
    assert stopped_cleanly(proc, last_words), last_words
    assert [pid for pid in children if alive(pid)] == [], "Ctrl-C must stop every process make run started"
    assert not any(port_open(p) for p in (port, db_port, redis_port))
    assert (clone / ".data" / "mongo").is_dir(), "the data lives under the clone's .data/"

    proc = make_run(clone, port)
    try:
        output = read_until_ready(proc, port, 60)
        assert graphql(port, '{ venues(city: "Oslo") { name } }')["data"]["venues"] == [{"name": "Hall"}]
        # The dev secret is kept in DATA_DIR, so the first run's token still works.
        assert graphql(port, VENUE.replace('"Hall"', '"Hall 2"'), token)["data"]["createVenue"]["errors"] == []

        # A worker that dies is started again, and /readyz sees it back.
        worker_pid = int(re.search(r"arq worker started \(pid (\d+)\)", output).group(1))
        wait_for(lambda: worker_check(port) == "ok", 15, "the worker's first heartbeat")
        os.kill(worker_pid, signal.SIGKILL)
        wait_for(lambda: worker_check(port) == "silent", 5, "/readyz to report the dead worker")
        replacement = wait_for(lambda: next(iter(workers_of(proc.pid) - {worker_pid}), None), 10, "a new worker")
        wait_for(lambda: worker_check(port) == "ok", 30, f"the new worker (pid {replacement}) to beat")
        children = descendants(proc.pid)
    finally:
        last_words = ctrl_c(proc)
    assert stopped_cleanly(proc, last_words), last_words
    assert [pid for pid in children if alive(pid)] == []
