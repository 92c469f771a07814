"""CPU used, and CPU waited for, by processes during a rush, read from /proc.

Cumulative per-process times taken at two moments give each process's share
of one core over that window, which says whether the database, the API or the
client limits the rush. On a shared machine a process may also be ready to
run with no core free: the scheduler's run-queue delay (schedstat, summed
over the process's threads) says how much of the window that was. Off Linux
the figures are simply missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds `pid` has used so far (its threads included); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces: the fields start after its closing parenthesis.
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def run_queue_seconds(pid: int) -> float | None:
    """Seconds the threads of `pid` alive now have spent ready to run but waiting for a core."""
    total, seen = 0, False
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[1])
            seen = True
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9 if seen else None


def machine_ticks() -> dict[str, int] | None:
    """The whole machine's CPU ticks so far (every process, ours or not): busy, idle, iowait."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return {"busy": user + nice + system + irq + softirq + steal, "idle": idle, "iowait": iowait}


def snapshot(pids: dict[str, int]) -> dict:
    """CPU seconds and run-queue seconds of each named process, and the machine's ticks, stamped."""
    return {
        "at": time.time(),
        "cpu": {name: cpu_seconds(pid) for name, pid in pids.items()},
        "waited": {name: run_queue_seconds(pid) for name, pid in pids.items()},
        "machine": machine_ticks(),
    }


def machine_percent(before: dict, after: dict) -> dict[str, float] | None:
    """Share of all the machine's cores busy (with anyone's work) and in iowait between two snapshots."""
    a, b = before.get("machine"), after.get("machine")
    if not a or not b:
        return None
    total = sum(b[k] - a[k] for k in ("busy", "idle", "iowait"))
    if total <= 0:
        return None
    return {k: round(100 * (b[k] - a[k]) / total, 1) for k in ("busy", "iowait")}


def _percent(before: dict, after: dict, key: str) -> dict[str, float]:
    wall = after["at"] - before["at"]
    out = {}
    for name, start in before[key].items():
        end = after[key].get(name)
        if start is not None and end is not None and wall > 0:
            out[name] = round(100 * (end - start) / wall, 1)
    return out


def busy_percent(before: dict, after: dict) -> dict[str, float]:
    """Per process: CPU used between two snapshots, as a percentage of one core."""
    return _percent(before, after, "cpu")


def waited_percent(before: dict, after: dict) -> dict[str, float]:
    """Per process: time its threads were ready but not running, as a percentage of the window."""
    return _percent(before, after, "waited")
