"""`make bench` in a small form: the same command, 40 buyers for 12 tickets, every figure printed.

Timing targets are not asserted (they are figures to read, on a shared
machine); what is asserted is that the rush ran to the end, measured what it
claims to measure, sold exactly the tickets, and broke no guarantee.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts a database, Redis, a worker, an API and two buyer processes

ROOT = Path(__file__).resolve().parents[1]
TICKETS = 12


def test_a_small_rush_prints_every_figure_and_keeps_the_guarantees(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--buyers", "40", "--tickets", str(TICKETS), "--limit", "50", "--apis", "1",
         "--grace", "10", "--max-seconds", "45", "--raw-updates", "400", "--out", str(tmp_path), "--json", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    for label in ("orders/s until sold out", "buyer p50", "DB commands per order", "raw guarded updates/s",
                  "all answered, after sell-out", "no answer (stuck)", "invariants"):
        assert label in run.stdout, f"{label!r} not printed:\n{run.stdout}"

    (result,) = json.loads(results.read_text())["results"]
    figures, checks = result["figures"], result["checks"]
    assert result["raw_guarded_updates"]["per_second"] > 0
    assert figures["orders_per_s"] > 0
    assert figures["p50_s"] is not None and figures["p95_s"] is not None
    assert result["db_commands"]["per_order"]["total"] > 0
    assert result["ratios"]["orders_per_raw_update"] > 0
    assert figures["no_answer"] >= 0 and set(figures["outcomes"]) <= {"order", "refused", "closed", "no_answer", "error"}
    assert sum(figures["outcomes"].values()) == 40, figures["outcomes"]

    # Sold exactly the tickets: to the buyers, and in the database.
    assert figures["sold_out"] and figures["orders"] == TICKETS, figures
    assert figures["tickets_sold_to_buyers"] == TICKETS
    counts = checks["counts"]
    assert counts["quantity_sold"] == counts["tickets_issued"] == counts["orders_completed"] == TICKETS, counts
    # No oversell, unique ticket numbers and codes, no slot above the limit.
    assert checks["violations"] == [], checks["violations"]
    assert counts["active_checkouts"] <= 50


def test_the_reads_scenario_measures_q2_against_the_bare_handler(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "reads", "--read-seconds", "1", "--out", str(tmp_path),
         "--json", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    for label in ("Q2 event(id) through the app", "bare aiohttp handler", "app / bare", "{ __typename }"):
        assert label in run.stdout, f"{label!r} not printed:\n{run.stdout}"

    (result,) = json.loads(results.read_text())["results"]
    medians = result["medians"]
    # Every target answered, without a failed response, in every round.
    assert set(medians) == {"app_q2", "bare_q2", "app_typename"}
    assert all(len(runs) == 3 for runs in result["rounds"].values())
    assert all(m["requests_per_s"] > 0 and m["failures"] == 0 for m in medians.values()), medians
    assert result["ratio_q2_app_to_bare"] == medians["app_q2"]["requests_per_s"] / medians["bare_q2"]["requests_per_s"]


def test_the_subscriptions_scenario_holds_2000_waiting_buyers_in_little_memory(tmp_path: Path) -> None:
    """Issue 9: 2,000 open queueUpdates subscriptions on one real API process, memory per
    subscription from its RSS, positions right after a change, ADMITTED before the answer."""
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "subscriptions", "--subscribers", "2000",
         "--out", str(tmp_path), "--json", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    assert "API memory per subscription" in run.stdout, run.stdout
    (result,) = json.loads(results.read_text())["results"]
    # 39 KB each when this was first measured at 2,000; the bench's target is 30 at 10,000.
    assert result["kb_per_subscription"] <= 32, result
    assert result["positions_late"] == 0 and result["positions_right_after_s"] is not None, result
    assert result["admitted_before_answer"] == result["admissions"] == 5, result
    assert result["idle_cpu_percent"] < 10, result
    assert result["server_problems"] == [], result["server_problems"]


def test_the_search_scenario_times_four_kinds_of_query_over_http(tmp_path: Path) -> None:
    """Issue 9's search scenario in a small form: a demo catalog loaded through the project's
    code, each kind of query answered with results over HTTP, the catalog kept for the next run."""
    results = tmp_path / "results.json"
    command = [sys.executable, "-m", "bench", "--scenario", "search", "--search-events", "1500",
               "--out", str(tmp_path), "--json", str(results)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    assert "one common word  p50 / p95" in run.stdout, run.stdout
    (result,) = json.loads(results.read_text())["results"]
    assert set(result["kinds"]) == {"one common word", "two words", "3-letter prefix", "word + city"}
    assert all(k["results"] > 0 and 0 < k["p50_ms"] <= k["p95_ms"] for k in result["kinds"].values()), result
    assert result["load_seconds"] is not None and result["server_problems"] == [], result
    # A second run reuses the catalog instead of loading it again.
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(results.read_text())["results"][0]["load_seconds"] is None
