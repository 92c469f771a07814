"""Settings, read from the environment under the names of DESIGN section 3.

One `Settings` object is built at start-up and passed down explicitly; nothing
reads the environment anywhere else, so tests can build their own.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_FILE = "dev-jwt-secret"


class Settings(BaseSettings):
    """Every knob of the product; each field is read from the env var of its name."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    queue_expiry_seconds: int = Field(1800, ge=1)
    queue_cooldown_seconds: int = Field(3600, ge=0)
    queue_cooldown_after_purchase_seconds: int = Field(0, ge=0)
    checkout_expiry_seconds: int = Field(600, ge=1)
    # How long a waitlisted buyer has to buy the tickets offered to them (app/waitlist).
    waitlist_offer_seconds: int = Field(900, ge=1)
    checkout_limit: int = Field(5, ge=1)
    max_tickets_per_purchase: int = Field(10, ge=1)
    # Rate limits (app/limits.py): points a second, and at most at once, per user (or client
    # address, anonymously); an operation takes what it costs. Check-in scans, per staff user.
    rate_limit_per_second: float = Field(10_000, gt=0)
    rate_limit_burst: float = Field(50_000, gt=0)
    checkin_per_second: float = Field(5, gt=0)
    checkin_burst: float = Field(20, gt=0)
    # Websockets (app/api/sockets.py), per API process: open at once per client (user, or address
    # anonymously), over them closed with 4429; operations running at once on one socket.
    max_sockets_per_client: int = Field(20, ge=1)
    max_subscriptions_per_socket: int = Field(100, ge=1)
    port: int = Field(8000, ge=0, le=65535)
    host: str = "127.0.0.1"
    # Unset means "start the embedded server" (only `make run` / `python -m app dev` does).
    mongodb_uri: str | None = None
    redis_url: str | None = None
    data_dir: Path = Field(Path(".data"), validate_default=True)
    # Comma-separated browser origins, e.g. "http://localhost:3000,https://app.example".
    cors_origins: str = ""
    jwt_secret: str | None = None
    # Tools for developers: on under `make run` and in tests, off under `serve` unless set true.
    graphiql: bool | None = None
    introspection: bool | None = None
    # /metrics needs `Authorization: Bearer <METRICS_TOKEN>` when set; `serve` serves it only then.
    metrics_token: str | None = None
    # The worker serves its Prometheus metrics on this port when set (the API uses /metrics).
    metrics_port: int | None = Field(None, ge=1, le=65535)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Resolved once, here: child servers run in their own folders, where a
        relative path would point somewhere else."""
        return value.expanduser().resolve()

    @cached_property
    def allowed_origins(self) -> tuple[str, ...]:
        """The CORS_ORIGINS list, split and trimmed."""
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    def resolve_jwt_secret(self) -> str | None:
        """JWT_SECRET, else the dev secret `make run` keeps in DATA_DIR, else None."""
        if self.jwt_secret:
            return self.jwt_secret
        dev_file = self.data_dir / DEV_SECRET_FILE
        if dev_file.exists():
            return dev_file.read_text().strip() or None
        return None
