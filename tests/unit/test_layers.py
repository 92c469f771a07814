"""The app does not import the workers: the workers' scheduler is handed to it by the entry point."""

from __future__ import annotations

import subprocess
import sys


def test_the_api_loads_without_importing_the_workers() -> None:
    probe = ("import sys, app.server, app.api.schema, app.serve; "
             "print(sorted(m for m in sys.modules if m == 'workers' or m.startswith('workers.')))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout


def test_each_part_of_the_graphql_layer_is_named_for_the_domain_it_serves() -> None:
    """app/api/<domain>/ mirrors app/<domain>/: a newcomer finds a field's rules beside it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "app"

    def packages(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}

    assert packages(root / "api") <= packages(root) - {"api"}, packages(root / "api") - packages(root)
