"""`python -m app serve`: one API process, configured entirely by the environment."""

from __future__ import annotations

import gc
import logging

from aiohttp import web

from app.config import Settings
from app.server import create_app

log = logging.getLogger("app.serve")

# Connections the kernel holds for us before we accept them. aiohttp's default of 128
# overflowed 5,073 times when 2,000 buyers opened their sockets in the same second
# (bench rush-2000), and each overflow costs the client a SYN retransmit: a second or
# more. The kernel caps it at net.core.somaxconn.
BACKLOG = 2048

# The collector's thresholds for a server: a young-generation pass every 50,000 allocations
# instead of 700. With 2,000 buyers' subscriptions open (600,000 live objects) the defaults
# spent 10 s of the API's 36 s of CPU in collections during the bench's rush-2000; these
# spent 1.5 s, and the rush sold 16.9 orders/s instead of 12.2 (docs/BENCHMARKS.md).
GC_THRESHOLDS = (50_000, 10, 10)


def tune_garbage_collector() -> None:
    """Collect less often, and never again look at what start-up built (modules, schema)."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.collect()
    gc.freeze()


# HS256 keys shorter than the hash (RFC 7518 section 3.2) can be guessed offline from one token.
MIN_SECRET_BYTES = 32


def weak_secret(secret: str | None) -> str | None:
    """Why `secret` may not sign production tokens, or None. Production never falls back to
    the dev secret `make run` keeps in DATA_DIR: a server started without JWT_SECRET would
    quietly accept tokens signed with a key that sits on its own disk."""
    if not secret:
        return "JWT_SECRET is not set: `serve` needs a secret of its own (`make run` makes one for development)"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"JWT_SECRET is too short: at least {MIN_SECRET_BYTES} bytes (`openssl rand -base64 32`)"
    return None


def serve(settings: Settings, graphiql_headers: dict[str, str] | None = None, *, development: bool = False) -> int:
    """Run the API on HOST:PORT until SIGINT/SIGTERM: in production unless `development`
    (`make run`): then GraphiQL, introspection and /metrics are on unless turned off."""
    if not settings.mongodb_uri:
        log.error("MONGODB_URI is not set (use `make run` for the embedded database)")
        return 2
    weak = weak_secret(settings.jwt_secret)
    if weak:
        log.error("%s", weak)
        return 2
    # The composition root: the workers' scheduler is handed to the app, which never imports them.
    from workers.scheduler import connect_scheduler

    app = create_app(settings, graphiql_headers=graphiql_headers, connect_scheduler=connect_scheduler,
                     production=not development)
    tune_garbage_collector()
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None, backlog=BACKLOG)
    return 0
