"""The reads scenario (DESIGN section 7): Q2 `event(id)` through the whole app, against a
bare aiohttp handler doing the same two finds on the same server, in the same run.

Load comes from wrk (C, one thread), so the generator is not what limits either
side. Rounds alternate between the two targets and the medians are compared,
so a noisy neighbour hurts both alike. `{ __typename }` through the app is
measured too: the cost of the HTTP and GraphQL layers with no resolver at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.embedded import _die_with_parent, free_port
from bench.documents import document
from bench.seed import seed_sale
from bench.stack import ROOT, embedded_stack

JWT_SECRET = "bench-secret-long-enough-for-hs256-signatures"


@dataclass(frozen=True)
class ReadsConfig:
    """How hard and how long each target is loaded."""

    name: str = "reads"
    connections: int = 16
    seconds: float = 5.0
    rounds: int = 3


def wrk_binary() -> str:
    """wrk from PATH; installed from Debian when missing and we may (CI runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if not shutil.which("wrk"):  # the package lists may be missing on a fresh machine
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise RuntimeError("the reads scenario needs wrk: `apt-get install wrk` (Debian), then run it again")


def run_reads(config: ReadsConfig, workdir: Path) -> dict[str, Any]:
    """Load the app and the bare handler in alternating rounds; their rates and the ratio."""
    wrk = wrk_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    with embedded_stack(workdir, apis=1, checkout_limit=50, jwt_secret=JWT_SECRET) as stack:
        sale = seed_sale(stack.api_ports[0], JWT_SECRET, tickets=100)
        q2 = {"query": document("Event"), "variables": {"id": sale.event_id}}
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "bench.bare", str(bare_port), stack.uri], cwd=ROOT,
                                stdout=open(workdir / "bare.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)  # noqa: PLW1509
        try:
            app_url, bare_url = f"http://127.0.0.1:{stack.api_ports[0]}/graphql", f"http://127.0.0.1:{bare_port}/graphql"
            answer = _wait_for_answer(app_url, q2)
            if answer.get("errors") or not answer.get("data", {}).get("event"):
                raise RuntimeError(f"Q2 through the app did not answer the event: {answer}")
            _wait_for_answer(bare_url, q2)
            targets = {"app_q2": (app_url, q2), "bare_q2": (bare_url, q2),
                       "app_typename": (app_url, {"query": "{ __typename }"})}
            rounds: dict[str, list[dict]] = {name: [] for name in targets}
            for _ in range(config.rounds):
                for name, (url, body) in targets.items():
                    rounds[name].append(_load(wrk, url, body, config, workdir / f"{name}.lua"))
        finally:
            bare.terminate()
            bare.wait(10)
    medians = {name: _median(runs) for name, runs in rounds.items()}
    bare_rate = medians["bare_q2"]["requests_per_s"]
    return {
        "scenario": asdict(config),
        "rounds": rounds,
        "medians": medians,
        "ratio_q2_app_to_bare": medians["app_q2"]["requests_per_s"] / bare_rate if bare_rate else None,
    }


def _wait_for_answer(url: str, body: dict, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _load(wrk: str, url: str, body: dict, config: ReadsConfig, script: Path) -> dict:
    """One wrk run: requests per second, latency percentiles (ms) and failures."""
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    run = subprocess.run(
        [wrk, "-t1", f"-c{config.connections}", f"-d{config.seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=config.seconds + 30, check=True,
    )
    out = run.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    failures = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "requests_per_s": rate,
        "p50_ms": _latency(out, "50%"), "p99_ms": _latency(out, "99%"),
        "failures": int(failures.group(1)) if failures else 0,
        "socket_errors": errors.group(0) if errors else None,
    }


def _latency(out: str, percentile: str) -> float | None:
    found = re.search(rf"^\s+{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not found:
        return None
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _median(runs: list[dict]) -> dict:
    return {
        "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs if r["p50_ms"] is not None),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs if r["p99_ms"] is not None),
        "failures": sum(r["failures"] for r in runs),
    }


TARGET_RATIO = 0.7


def reads_table(result: dict) -> str:
    """The scenario's figures, the issue's target beside the ratio."""
    m = result["medians"]
    ratio = result["ratio_q2_app_to_bare"]
    rows = [
        ("Q2 event(id) through the app (req/s)", f"{m['app_q2']['requests_per_s']:,.0f}"),
        ("Q2's two finds, bare aiohttp handler (req/s)", f"{m['bare_q2']['requests_per_s']:,.0f}"),
        (f"  app / bare  [>= {TARGET_RATIO}]", f"{ratio:.2f}" + (" ok" if ratio >= TARGET_RATIO else " MISSED")),
        ("{ __typename } through the app (req/s)", f"{m['app_typename']['requests_per_s']:,.0f}"),
        ("p50 / p99 latency, app Q2 (ms)", f"{m['app_q2']['p50_ms']:.1f} / {m['app_q2']['p99_ms']:.1f}"),
        ("p50 / p99 latency, bare (ms)", f"{m['bare_q2']['p50_ms']:.1f} / {m['bare_q2']['p99_ms']:.1f}"),
        ("failed answers (all rounds)", str(sum(v["failures"] for v in m.values()))),
    ]
    width = max(len(label) for label, _ in rows) + 4
    head = f"reads: medians of {result['scenario']['rounds']} rounds, {result['scenario']['connections']} connections"
    return "\n".join([head] + [f"{label:<{width}}{value:>12}" for label, value in rows])
