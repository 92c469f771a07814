"""`--profile`: sample the database and API processes with py-spy from the start to the sell-out.

py-spy is not a dependency of the project: install it into the venv for your
own use (`.venv/bin/pip install py-spy`). It samples with `--nonblocking` (the
processes are never paused) and `--gil` (only the thread holding the GIL), so
a process's samples over the window's expected samples is the share of the
time its interpreter was busy: near 100% means that process runs out of
Python, whatever its thread count. The frames say what it was busy with. The
raw stacks stay in the rush's folder (one `<process>.folded` each, for
flamegraph tools).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

RATE = 50  # samples a second per thread


def py_spy() -> str | None:
    """The py-spy binary: next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy recorders attached to running processes, stopped together."""

    def __init__(self, pids: dict[str, int], folder: Path) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.files = {name: folder / f"{name}.folded" for name in pids}
        self.started = time.monotonic()
        self.seconds = 0.0
        self.procs = [
            subprocess.Popen(
                [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", str(RATE), "--nonblocking", "--gil",
                 "--output", str(self.files[name])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]

    def stop(self) -> None:
        """SIGINT makes py-spy write what it sampled; SIGKILL whatever does not exit. Once."""
        if self.seconds:
            return
        self.seconds = time.monotonic() - self.started
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def summary(self, top: int = 8) -> dict[str, dict]:
        """Per process: GIL-held share of the window, the busiest leaf frames (self time), and the
        busiest frames of the project, the database server and the libraries between (inclusive time)."""
        out = {}
        for name, path in self.files.items():
            leaves: Counter[str] = Counter()
            inclusive: Counter[str] = Counter()
            total = 0
            if path.exists():
                for line in path.read_text(errors="replace").splitlines():
                    stack, _, count = line.rpartition(" ")
                    if not count.isdigit():
                        continue
                    frames = [_function(f) for f in stack.split(";")]
                    leaves[frames[-1]] += int(count)
                    for frame in set(frames):
                        if frame.split("(")[-1].startswith(INTERESTING) and not ROOTS.match(frame):
                            inclusive[frame] += int(count)
                    total += int(count)
            expected = self.seconds * RATE

            out[name] = {
                "busy_percent_of_a_thread": round(100 * total / expected, 1) if expected else None,
                "samples": total,
                "top_frames": _shares(leaves, total, top),
                "top_inclusive": _shares(inclusive, total, top),
            }
        return out


# Frames worth naming in the inclusive view: the project's own, and the database server's.
INTERESTING = ("app/", "workers/", "secantus/")
# ...except the entry points every sample passes through, which say nothing.
ROOTS = re.compile(r"^(<module>|main|serve|run_dev|run_worker|SecantusDBServer\.(serve|run)\w*|_handle_client|\w+\._handle_client|metrics_middleware|cors_middleware) ")


def _shares(counts: Counter[str], total: int, top: int) -> list[tuple[str, float]]:
    return [(f, round(100 * n / total, 1)) for f, n in counts.most_common(top)] if total else []


def _function(frame: str) -> str:
    """"name (file:line)" without the line, so one function's samples add up."""
    return re.sub(r":\d+\)$", ")", frame)
