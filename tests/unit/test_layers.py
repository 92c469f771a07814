"""The app does not import the workers: the workers' scheduler is handed to it by the entry point."""

from __future__ import annotations

import subprocess
import sys


def test_the_api_loads_without_importing_the_workers() -> None:
    probe = ("import sys, app.server, app.api.schema, app.serve; "
             "print(sorted(m for m in sys.modules if m == 'workers' or m.startswith('workers.')))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout
