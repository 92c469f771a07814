"""`python -m bench`: run the rush, reads, subscriptions and search scenarios, print the tables, write the JSON; exit 1 if a guarantee broke.

    python -m bench                                  # the default set (what `make bench` runs)
    python -m bench --scenario rush-2api             # some of them
    python -m bench --buyers 40 --tickets 12 --apis 1  # one rush of your own
    python -m bench --scenario reads                 # Q2 through the app against a bare handler
    python -m bench --scenario subscriptions --subscribers 2000  # memory per open queueUpdates
    python -m bench --scenario search --search-events 20000      # searchEvents over HTTP (catalog kept)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import signal
import sys
import time
import traceback
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from bench.reads import ReadsConfig, reads_table, run_reads
from bench.report import details, table, write_json
from bench.rush import RushConfig, run_rush
from bench.search import SearchConfig, run_search, search_table
from bench.subscriptions import SubscriptionsConfig, run_subscriptions, subscriptions_table

SCENARIOS = {
    "rush-1api": RushConfig("rush-1api"),
    "rush-2api": RushConfig("rush-2api", apis=2),
    # The rush of rush-1api, each checkout holding its buyer's ticket (issue 11).
    "rush-holds": RushConfig("rush-holds", holds=True),
    # Today this one takes minutes: bounded, and whoever is left waiting counts as "no answer".
    "rush-2000": RushConfig("rush-2000", buyers=2000, tickets=500, max_seconds=600.0),
    "reads": ReadsConfig(),
    "subscriptions": SubscriptionsConfig(),
    # The first run loads 100,000 events (about ten minutes); later runs reuse them.
    "search": SearchConfig(),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run this scenario (repeat for several); default: all of them")
    parser.add_argument("--buyers", type=int, help="buyers (N)")
    parser.add_argument("--tickets", type=int, help="tickets on sale (S)")
    parser.add_argument("--limit", type=int, dest="checkout_limit", help="CHECKOUT_LIMIT")
    parser.add_argument("--apis", type=int, help="API processes (buyer i uses process i %% count)")
    parser.add_argument("--buyer-processes", type=int, help="OS processes the buyers are spread over (default 2)")
    parser.add_argument("--grace", type=float, dest="grace_s", help="seconds a buyer is waited for after the sell-out (default 30)")
    parser.add_argument("--max-seconds", type=float, help="bound on one rush from its start")
    parser.add_argument("--raw-updates", type=int, help="guarded updates in the raw-rate loop (default 1200)")
    parser.add_argument("--profile", action="store_true", default=None,
                        help="sample the database and API processes with py-spy until the sell-out (needs py-spy)")
    parser.add_argument("--trace", action="store_true", default=None,
                        help="record every database command to commands.jsonl (slows the rush: for small runs)")
    parser.add_argument("--read-seconds", type=float, help="seconds of load per round of the reads scenario (default 5)")
    parser.add_argument("--subscribers", type=int, help="open subscriptions in the subscriptions scenario (default 10,000)")
    parser.add_argument("--search-events", type=int, help="demo events in the search scenario (default 100,000)")
    parser.add_argument("--out", type=Path, default=Path(".data/bench"), help="logs and results (default .data/bench)")
    parser.add_argument("--json", type=Path, help="write the results here (default OUT/results-<time>.json)")
    return parser.parse_args(argv)


def chosen(args: argparse.Namespace) -> list[RushConfig | ReadsConfig | SubscriptionsConfig | SearchConfig]:
    """The scenarios to run, with the size flags applied; size flags alone make one custom rush."""
    overrides = {
        k: getattr(args, k) for k in ("buyers", "tickets", "checkout_limit", "apis", "buyer_processes", "grace_s",
                                      "max_seconds", "raw_updates", "profile", "trace")
        if getattr(args, k) is not None
    }
    if args.scenario:
        base = [SCENARIOS[name] for name in args.scenario]
    elif overrides.keys() & {"buyers", "tickets", "checkout_limit", "apis"}:
        base = [RushConfig("rush")]
    else:
        base = list(SCENARIOS.values())
    own = {
        ReadsConfig: {"seconds": args.read_seconds} if args.read_seconds else {},
        SubscriptionsConfig: {"subscribers": args.subscribers} if args.subscribers else {},
        SearchConfig: {"events": args.search_events} if args.search_events else {},
        RushConfig: overrides,
    }
    return [dataclasses.replace(c, **own[type(c)]) for c in base]


def machine() -> dict:
    """What the figures were measured on."""
    model = "?"
    with suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(), "platform": platform.platform()}


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM unwind the run, so every server started is stopped by its pid
    (SIGINT too: a shell may have started us with it ignored)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _stop_on_signals()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = (args.out / stamp).resolve()
    results, failed = [], False
    for config in chosen(args):
        if isinstance(config, ReadsConfig):
            print(f"{config.name}: Q2 against a bare handler, {config.rounds} rounds of {config.seconds:g} s...", flush=True)
        elif isinstance(config, SubscriptionsConfig):
            print(f"{config.name}: {config.subscribers:,} queueUpdates subscriptions on one API process...", flush=True)
        elif isinstance(config, SearchConfig):
            print(f"{config.name}: searchEvents over {config.events:,} demo events...", flush=True)
        else:
            print(f"{config.name}: {config.buyers} buyers, {config.tickets} tickets, CHECKOUT_LIMIT {config.checkout_limit}, "
                  f"{config.apis} API process(es)...", flush=True)
        started = time.monotonic()
        try:
            run = {ReadsConfig: run_reads, SubscriptionsConfig: run_subscriptions, SearchConfig: run_search,
                   RushConfig: run_rush}[type(config)]
            result = run(config, run_dir / config.name)
        except KeyboardInterrupt:
            print("interrupted: everything started was stopped", file=sys.stderr)
            return 130
        except Exception:  # noqa: BLE001 - report it and go on with the next scenario
            traceback.print_exc()
            print(f"{config.name}: FAILED to run (logs in {run_dir / config.name})", file=sys.stderr)
            failed = True
            continue
        results.append(result)
        failed |= bool(result.get("checks", {}).get("violations"))
        print(f"  done in {time.monotonic() - started:.0f}s", flush=True)
    if results:
        rushes = [r for r in results if "checks" in r]
        if rushes:
            print()
            print(table(rushes))
            for result in rushes:
                print(details(result))
        for result in results:
            if "ratio_q2_app_to_bare" in result:
                print()
                print(reads_table(result))
            if "kb_per_subscription" in result:
                print()
                print(subscriptions_table(result))
            if "kinds" in result:
                print()
                print(search_table(result))
        path = args.json or args.out / f"results-{stamp}.json"
        write_json(results, path, machine() | {"measured_at": stamp})
        print(f"\nresults: {path}")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
