"""The search scenario (issue 9): searchEvents over HTTP against a demo catalog of N events.

The catalog is loaded once through the project's own code (`app.demo.seed_demo`,
what `make seed-demo` runs) into `.data/bench/search-catalog-<N>` and reused by
later runs: 100,000 events take about ten minutes to load. Four kinds of query
are sent one at a time, each many times, through one API process: a common
word (in about one event in ten), two words, a 3-letter prefix, and a word with
a city filter. It reports each kind's p50 and p95.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from app import db as db_module
from app.demo import Catalogue, seed_demo
from app.runtime import offline_runtime
from app.embedded import free_port, start_mongo
from bench.documents import document
from bench.reads import JWT_SECRET
from bench.stack import UNLIMITED, _ready, _spawn, _wait, stop_child

TARGET_P95_MS = 50.0
# Bumped when the demo catalog or the event documents change shape: an old catalog is reloaded.
CATALOG_VERSION = 2


@dataclass(frozen=True)
class SearchConfig:
    name: str = "search"
    events: int = 100_000
    requests: int = 40  # of each kind


def kinds() -> dict[str, dict[str, Any]]:
    """The four kinds of query, as variables of graphql/catalog/SearchEvents.graphql."""
    top_word = Catalogue().vocabulary[0]
    return {
        "one common word": {"query": "live"},
        "two words": {"query": f"live {top_word}"},
        "3-letter prefix": {"query": "liv"},
        "word + city": {"query": "live", "city": "London"},
    }


def run_search(config: SearchConfig, workdir: Path) -> dict[str, Any]:
    """Load (or reuse) the catalog, start one API process on it, time each kind over HTTP."""
    workdir.mkdir(parents=True, exist_ok=True)
    catalog_dir = workdir.parent.parent / f"search-catalog-{config.events}-v{CATALOG_VERSION}"
    mongo = start_mongo(catalog_dir / "mongo", durable=True)
    try:
        loaded = catalog_dir / "loaded"
        load_seconds = None
        if not loaded.exists():
            started = time.monotonic()
            asyncio.run(_load(mongo.uri("search"), config.events))
            load_seconds = time.monotonic() - started
            loaded.write_text(f"{config.events} events in {load_seconds:.0f} s\n")
        api = _spawn(workdir, "api0", "serve", {"MONGODB_URI": mongo.uri("search"), "JWT_SECRET": JWT_SECRET, **UNLIMITED},
                     port=free_port())
        try:
            _wait(api, lambda: _ready(api.port))
            timings = asyncio.run(_time_kinds(api.port, config.requests))
        finally:
            stop_child(api)
        problems = api.problems()
    finally:
        mongo.stop()
    summary = {kind: {"p50_ms": statistics.median(ms), "p95_ms": _p95(ms), "results": found}
               for kind, (ms, found) in timings.items()}
    return {"scenario": asdict(config), "load_seconds": load_seconds, "catalog": str(catalog_dir),
            "kinds": summary, "server_problems": problems[:20]}


async def _load(uri: str, events: int) -> None:
    client = db_module.connect(uri)
    try:
        db = db_module.get_database(client, uri)
        await db_module.ensure_indexes(db)
        await seed_demo(offline_runtime(db), events=events)
    finally:
        await client.close()


async def _time_kinds(port: int, requests: int) -> dict[str, tuple[list[float], int]]:
    url, query = f"http://127.0.0.1:{port}/graphql", document("SearchEvents")
    out: dict[str, tuple[list[float], int]] = {}
    async with aiohttp.ClientSession() as http:
        for kind, variables in kinds().items():
            ms: list[float] = []
            found = 0
            for n in range(requests + 2):  # the first two warm the caches and are not counted
                started = time.perf_counter()
                async with http.post(url, json={"query": query, "variables": variables}) as response:
                    body = await response.json()
                if body.get("errors"):
                    raise RuntimeError(f"{kind}: {body['errors']}")
                if n >= 2:
                    ms.append((time.perf_counter() - started) * 1000)
                found = len(body["data"]["searchEvents"])
            out[kind] = (ms, found)
    return out


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def search_table(result: dict) -> str:
    """Each kind's latency, the issue's target beside its p95."""
    rows = []
    for kind, figures in result["kinds"].items():
        p95 = figures["p95_ms"]
        rows.append((f"{kind}  p50 / p95 (ms)  [p95 <= {TARGET_P95_MS:g}]",
                     f"{figures['p50_ms']:.1f} / {p95:.1f}" + (" ok" if p95 <= TARGET_P95_MS else " MISSED")))
    loaded = result["load_seconds"]
    rows.append(("catalog loaded in (s)", "reused" if loaded is None else f"{loaded:.0f}"))
    width = max(len(label) for label, _ in rows) + 4
    head = f"search: {result['scenario']['events']:,} demo events, {result['scenario']['requests']} requests of each kind over HTTP"
    return "\n".join([head] + [f"{label:<{width}}{value:>18}" for label, value in rows])
