"""Test fixtures: a real SecantusDB server per test module, one database per test,
and the aiohttp app served over real HTTP.

Each module gets a fresh server (it starts in well under a second), so no
module's leftovers can slow or confuse another's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import monitoring

from app.auth import issue_token
from app.config import Settings
from app.embedded import EmbeddedMongo, EmbeddedRedis, start_mongo, start_redis
from app.server import create_app
from workers.scheduler import connect_scheduler
from tests.api_client import ApiClient

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(scope="module")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    server = start_mongo(tmp_path_factory.mktemp("secantus"), durable=False)
    yield server
    server.kill()  # throwaway data: a graceful stop would only cost time


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server for the module (started only by tests that ask for it)."""
    server = start_redis(tmp_path_factory.mktemp("redis"), persist=False)
    yield server
    server.kill()


@pytest.fixture
def mongo_uri(mongo_server: EmbeddedMongo) -> str:
    return mongo_server.uri(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def settings(mongo_uri: str) -> Settings:
    return Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, _env_file=None)


def _scans_on_secantus(name: str, command: dict) -> bool:
    """Would SecantusDB scan the whole collection for this command? It does for every
    findAndModify (its write filter is `{_id, $and: [query]}`) and for any filter with a
    top-level operator such as `$and`, `$or` or `$expr` (secantus/storage.py `_try_index_id_keys`)."""
    if name == "findAndModify":
        return True
    filters = {
        "find": [command.get("filter") or {}],
        "update": [u.get("q") or {} for u in command.get("updates", [])],
        "delete": [d.get("q") or {} for d in command.get("deletes", [])],
    }.get(name, [])
    return any(any(str(k).startswith("$") for k in f) for f in filters)


class CommandCounter(monitoring.CommandListener):
    """Counts the database commands the app sends (round trips), by command name."""

    IGNORED = {"ping", "hello", "isMaster", "ismaster", "endSessions", "createIndexes", "buildInfo"}

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.targets: list[str] = []  # "find eventQueue": what each command touched, in order
        self.scans: list[str] = []  # commands SecantusDB answers with a scan of the whole collection

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in self.IGNORED:
            self.commands.append(event.command_name)
            self.targets.append(f"{event.command_name} {event.command.get(event.command_name)}")
            if _scans_on_secantus(event.command_name, event.command):
                self.scans.append(f"{event.command_name} {event.command.get(event.command_name)}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def reset(self) -> None:
        self.commands.clear()
        self.targets.clear()
        self.scans.clear()


@pytest.fixture
def command_counter() -> CommandCounter:
    return CommandCounter()


@pytest.fixture
def sweep() -> bool:
    """Whether the app runs its background expiry sweep; off unless a test overrides this
    fixture, so that round-trip counts see only the request's own commands."""
    return False


@pytest.fixture
async def api(aiohttp_client, settings: Settings, command_counter: CommandCounter, sweep: bool) -> AsyncIterator[ApiClient]:
    """The app over real HTTP, with helpers to send the documents in graphql/."""
    app = create_app(settings, db_listeners=[command_counter], sweep=sweep)
    client = await aiohttp_client(app)
    yield ApiClient(client, app)


@pytest.fixture
def make_api(aiohttp_client, mongo_uri: str):
    """Build another app on the test's database with custom settings: `await make_api(checkout_limit=1)`."""

    async def build(*, sweep: bool = False, db_listeners: tuple = (), **overrides) -> ApiClient:
        settings = Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, _env_file=None, **overrides)
        # With REDIS_URL the app schedules through the workers' scheduler, as `serve` wires it.
        app = create_app(settings, sweep=sweep, db_listeners=list(db_listeners), connect_scheduler=connect_scheduler)
        return ApiClient(await aiohttp_client(app), app)

    return build


def make_token(user: str, *roles: str, ttl: int = 3600, secret: str = JWT_SECRET) -> str:
    return issue_token(secret, user, list(roles), ttl)


@pytest.fixture
def organizer() -> str:
    return make_token("org-1", "organizer")


@pytest.fixture
def other_organizer() -> str:
    return make_token("org-2", "organizer")


@pytest.fixture
def buyer() -> str:
    return make_token("buyer-1")
