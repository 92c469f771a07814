"""`make run`: the whole product on its embedded defaults, stopped together on Ctrl-C.

Starts SecantusDB under DATA_DIR (unless MONGODB_URI is set), makes a dev JWT
secret (unless JWT_SECRET is set) and keeps it in DATA_DIR so tokens survive
restarts, prints the GraphiQL URL and an organizer token, then serves the API.
"""

from __future__ import annotations

import logging
import secrets

from app.auth import issue_token
from app.config import DEV_SECRET_FILE, Settings
from app.embedded import start_mongo
from app.serve import serve

log = logging.getLogger("app.dev")

DEV_USER = "dev-organizer"


def dev_secret(settings: Settings) -> str:
    """JWT_SECRET, else the secret kept in DATA_DIR, made on first use."""
    existing = settings.resolve_jwt_secret()
    if existing:
        return existing
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / DEV_SECRET_FILE
    path.write_text(secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()


def run_dev(settings: Settings) -> int:
    secret = dev_secret(settings)
    mongo = None
    if not settings.mongodb_uri:
        mongo = start_mongo(settings.data_dir / "mongo")
        log.info("embedded SecantusDB on port %s (data in %s)", mongo.port, settings.data_dir / "mongo")
        settings = settings.model_copy(update={"mongodb_uri": mongo.uri()})
    settings = settings.model_copy(update={"jwt_secret": secret})
    token = issue_token(secret, DEV_USER, ["organizer", "staff"])
    url = f"http://{settings.host}:{settings.port}/graphql"
    print(
        f"\n  GraphiQL:  {url}\n"
        f"  Dev token ({DEV_USER}, organizer + staff), already in GraphiQL's headers:\n"
        f"    Authorization: Bearer {token}\n"
        f"  More tokens: .venv/bin/python -m app token USER --role organizer\n"
        f"  Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        return serve(settings, graphiql_headers={"Authorization": f"Bearer {token}"})
    finally:
        if mongo is not None:
            mongo.stop()
            log.info("embedded SecantusDB stopped")
