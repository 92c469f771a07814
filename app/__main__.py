"""Command line: `python -m app serve | dev | worker | token | schema | seed-demo`."""

from __future__ import annotations

import argparse
import logging
import sys

from app.auth import ROLES, issue_token
from app.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Events & ticketing GraphQL API")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the API (production: MONGODB_URI and JWT_SECRET set)")
    commands.add_parser("dev", help="run everything on embedded defaults (what `make run` does)")
    commands.add_parser("worker", help="run one arq worker (MONGODB_URI and REDIS_URL set)")
    commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    token = commands.add_parser("token", help="print a signed token for USER")
    token.add_argument("user", help="the token's subject (user id)")
    token.add_argument("--role", action="append", choices=ROLES, default=[], help="repeat for several roles")
    token.add_argument("--ttl", type=int, default=7 * 24 * 3600, help="lifetime in seconds (default: a week)")
    demo = commands.add_parser("seed-demo", help="load a demo catalog of N events (stop `make run` first)")
    demo.add_argument("--events", type=int, default=100_000, help="how many events (default 100,000)")
    demo.add_argument("--seed", type=int, default=7, help="the same seed makes the same catalog")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "schema":
        from app.api.schema import build_schema

        print(str(build_schema()).rstrip())
        return 0
    settings = Settings()
    if args.command == "token":
        secret = settings.resolve_jwt_secret()
        if not secret:
            print("no JWT secret: set JWT_SECRET (or start `make run` once, which makes a dev secret)", file=sys.stderr)
            return 2
        print(issue_token(secret, args.user, args.role, args.ttl))
        return 0
    if args.command == "serve":
        from app.serve import serve

        return serve(settings)
    if args.command == "worker":
        from workers.run import run_worker

        return run_worker(settings)
    if args.command == "seed-demo":
        from app.demo import run_seed_demo

        return run_seed_demo(settings, events=args.events, seed=args.seed)
    if args.command == "dev":
        from app.dev import run_dev

        return run_dev(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
