"""`python -m app serve`: one API process, configured entirely by the environment."""

from __future__ import annotations

import logging

from aiohttp import web

from app.config import Settings
from app.server import create_app

log = logging.getLogger("app.serve")


def serve(settings: Settings, graphiql_headers: dict[str, str] | None = None) -> int:
    """Run the API on HOST:PORT until SIGINT/SIGTERM."""
    if not settings.mongodb_uri:
        log.error("MONGODB_URI is not set (use `make run` for the embedded database)")
        return 2
    if not settings.resolve_jwt_secret():
        log.error("JWT_SECRET is not set: no token could be checked")
        return 2
    app = create_app(settings, graphiql_headers=graphiql_headers)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0
