"""The aiohttp application: GraphQL, GraphiQL's assets, health and readiness, CORS."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any

from aiohttp import web
from pymongo.monitoring import CommandListener

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import db as database
from app import metrics
from app.api.schema import build_schema
from app.appkeys import BROKER, CONNECT_SCHEDULER, DB, DB_LISTENERS, FEEDS, JWT_SECRET, MONGO_CLIENT, RUNTIME, SETTINGS
from app.api.view import GRAPHIQL_STATIC_ROUTE, TicketingGraphQLView, graphiql_static_dir
from app.config import Settings
from app.limits import LocalLimiter, RedisLimiter
from app.live import EventFeeds
from app.pubsub import Broker, InProcessBroker, RedisBroker
from app.queue.sweep import sweep_forever
from app.runtime import NoScheduler, Runtime, Scheduler

log = logging.getLogger("app.server")

READY_TIMEOUT_SECONDS = 2.0
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Apollo-Require-Preflight",
    "Access-Control-Max-Age": "600",
}


def create_app(
    settings: Settings,
    *,
    db_listeners: Sequence[CommandListener] = (),
    graphiql_headers: dict[str, str] | None = None,
    broker: Broker | None = None,
    sweep: bool = True,
    connect_scheduler: Callable[[str], Awaitable[Scheduler]] | None = None,
    production: bool = False,
) -> web.Application:
    """The whole HTTP/websocket API for `settings` (MONGODB_URI must be set).

    With REDIS_URL, subscriptions fan out through Redis and expiry is the
    workers' jobs, scheduled through what `connect_scheduler` connects (the
    entry point passes the workers' own: the app never imports `workers`);
    without it, fan-out stays in this process. Either way the
    app runs its own expiry sweep whenever no worker's heartbeat is fresh
    (`sweep=False` turns it off, for tests that count commands).
    """
    if not settings.mongodb_uri:
        raise RuntimeError("MONGODB_URI is not set: run `make run` for the embedded database, or set it")
    app = web.Application(middlewares=[metrics_middleware, cors_middleware])
    app[SETTINGS] = settings
    app[JWT_SECRET] = settings.jwt_secret or ""  # `make run` passes its dev secret in explicitly
    app[DB_LISTENERS] = list(db_listeners)
    app[CONNECT_SCHEDULER] = connect_scheduler
    app[BROKER] = broker or (RedisBroker(settings.redis_url) if settings.redis_url else InProcessBroker())
    app.cleanup_ctx.append(_database)
    if sweep:
        app.cleanup_ctx.append(_sweeper)
    # Production (`serve`) shows no developer tools unless asked: GraphiQL, introspection, and
    # /metrics (business counters) only behind METRICS_TOKEN.
    graphiql = settings.graphiql if settings.graphiql is not None else not production
    introspection = settings.introspection if settings.introspection is not None else not production
    view = TicketingGraphQLView(
        schema=build_schema(introspection=introspection),
        allowed_origins=settings.allowed_origins,
        graphiql_headers=graphiql_headers,
        graphql_ide="graphiql" if graphiql else None,
        sockets_per_client=settings.max_sockets_per_client,
        max_subscriptions_per_connection=settings.max_subscriptions_per_socket,
    )
    app.router.add_route("*", "/graphql", view)
    if graphiql:
        app.router.add_static(GRAPHIQL_STATIC_ROUTE, graphiql_static_dir())
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.metrics_token or not production:
        app.router.add_get("/metrics", metrics_view)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings: Settings = app[SETTINGS]
    client = database.connect(settings.mongodb_uri, app[DB_LISTENERS])
    app[MONGO_CLIENT] = client
    app[DB] = database.get_database(client, settings.mongodb_uri)
    await database.ensure_indexes(app[DB])
    scheduler: Scheduler = NoScheduler()
    if isinstance(app[BROKER], RedisBroker):
        await app[BROKER].start()
        if app[CONNECT_SCHEDULER] is not None:
            scheduler = await app[CONNECT_SCHEDULER](settings.redis_url)
    limiter = RedisLimiter(settings.redis_url) if settings.redis_url else LocalLimiter()
    app[RUNTIME] = Runtime(db=app[DB], settings=settings, broker=app[BROKER], scheduler=scheduler, limiter=limiter)
    app[FEEDS] = EventFeeds(app[BROKER])
    yield
    if isinstance(limiter, RedisLimiter):
        await limiter.close()
    await app[FEEDS].close()
    await app[BROKER].close()
    await scheduler.close()
    await client.close()


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Expiry for buyers who never come back, whenever no worker is alive to do it."""
    task = asyncio.create_task(sweep_forever(app[RUNTIME]))
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is up and serving."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, and so does Redis when REDIS_URL is set.

    A silent worker is reported (`"worker": "silent"`) but does not make the
    API unready: its own sweep stands in for the worker meanwhile.
    """
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(database.ping(request.app[DB]), READY_TIMEOUT_SECONDS)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    broker = request.app[BROKER]
    if isinstance(broker, RedisBroker):
        try:
            await asyncio.wait_for(broker.ping(), READY_TIMEOUT_SECONDS)
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            log.warning("readiness: redis unreachable: %s", exc)
            checks["redis"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    if checks.get("redis") == "ok":
        alive = await asyncio.wait_for(request.app[RUNTIME].scheduler.workers_alive(), READY_TIMEOUT_SECONDS)
        checks["worker"] = "ok" if alive else "silent"
    return web.json_response({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text exposition of this process's metrics (behind METRICS_TOKEN, if set)."""
    token = request.app[SETTINGS].metrics_token
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return web.Response(status=401, text="metrics need: Authorization: Bearer <METRICS_TOKEN>\n")
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    """Request latency by route (the route's pattern, so paths cannot explode the label set)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else "unmatched"
        _latency(request.method, path, status).observe(time.perf_counter() - started)


@functools.lru_cache(maxsize=256)
def _latency(method: str, path: str, status: int) -> Any:
    """The histogram's child for these labels, looked up once (`labels` takes a lock each call)."""
    return metrics.REQUEST_SECONDS.labels(method, path, str(status))


@web.middleware
async def cors_middleware(request: web.Request, handler):
    """Answers preflights and marks responses for the origins listed in CORS_ORIGINS."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin.rstrip("/") in request.app[SETTINGS].allowed_origins
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return web.Response(status=403, text="origin not allowed")
        response: web.StreamResponse = web.Response(status=204, headers=CORS_HEADERS)
    else:
        response = await handler(request)
    if allowed and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response
