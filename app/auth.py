"""Identity: HS256 JWTs carrying `sub`, `roles` and `exp`, and the role checks.

Tokens arrive as `Authorization: Bearer <jwt>` on HTTP, or in the websocket
`connection_init` payload as {"authorization": "Bearer <jwt>"}.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from app.errors import ErrorCode, fail

ROLES = ("organizer", "staff", "admin")
ALGORITHM = "HS256"
DEFAULT_TOKEN_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Viewer:
    """Who is calling; `user_id` is None for an anonymous caller."""

    user_id: str | None = None
    roles: frozenset[str] = frozenset()
    # Why a token that was sent was refused (expired, bad signature...), if it was.
    token_error: str | None = None
    # When the token stops being valid (epoch seconds): a websocket opened with it closes then.
    expires_at: float | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    def has_any_role(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)


ANONYMOUS = Viewer()


def issue_token(secret: str, user_id: str, roles: list[str], ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS) -> str:
    """A signed token for `user_id` with `roles`, valid for `ttl_seconds`."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
    now = int(time.time())
    claims = {"sub": user_id, "roles": list(roles), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def viewer_from_authorization(secret: str | None, header: str | None) -> Viewer:
    """The viewer an `Authorization` value names; anonymous (with a reason) if it is bad."""
    if not header:
        return ANONYMOUS
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Viewer(token_error="Authorization must be 'Bearer <token>'")
    if not secret:
        return Viewer(token_error="this server has no JWT secret configured")
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        return Viewer(token_error="token expired")
    except jwt.InvalidTokenError:
        return Viewer(token_error="invalid token")
    sub, roles = claims.get("sub"), claims.get("roles", [])
    if not isinstance(sub, str) or not sub or not isinstance(roles, list):
        return Viewer(token_error="invalid token claims")
    exp = claims.get("exp")
    return Viewer(user_id=sub, roles=frozenset(r for r in roles if r in ROLES),
                  expires_at=float(exp) if isinstance(exp, (int, float)) else None)


def require_user(viewer: Viewer) -> str:
    """The viewer's user id, or UNAUTHENTICATED."""
    if not viewer.is_authenticated:
        raise fail(ErrorCode.UNAUTHENTICATED, viewer.token_error or "sign in first: send a bearer token")
    return viewer.user_id  # type: ignore[return-value]


def require_role(viewer: Viewer, *roles: str) -> str:
    """The viewer's user id if they hold one of `roles` (admin holds all), else an error."""
    user_id = require_user(viewer)
    if not viewer.has_any_role(*roles):
        raise fail(ErrorCode.FORBIDDEN, f"needs the {' or '.join(roles)} role")
    return user_id
