"""How failures reach clients.

- A business refusal in a mutation becomes entries of the payload's `errors`
  list (`UserError`), with the payload's object field null.
- On queries, a `DomainError` becomes a top-level error whose
  `extensions.code` is the same code (NOT_FOUND, UNAUTHENTICATED, VALIDATION...).
- Malformed requests keep graphql-core's readable message and get a code:
  GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, or VALIDATION for input
  values that cannot be coerced (a bad DateTime, say).
- Anything else is a fault of ours: the client sees "Internal server error"
  with code INTERNAL_SERVER_ERROR, never a message or stack trace; the log
  gets the traceback. Only those are logged at error level.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from graphql import GraphQLError

from app.errors import DomainError, ErrorCode, Problem

T = TypeVar("T")
P = TypeVar("P")

log = logging.getLogger("app.api")

ErrorCodeEnum = strawberry.enum(ErrorCode, name="ErrorCode")
INTERNAL = "INTERNAL_SERVER_ERROR"


@strawberry.type
class UserError:
    code: ErrorCodeEnum  # type: ignore[valid-type]
    message: str
    field: str | None = strawberry.field(
        default=None,
        description="Dotted path of the input field at fault, e.g. input.ticketTypes.0.quantityTotal",
    )

    @classmethod
    def from_problem(cls, problem: Problem) -> UserError:
        return cls(code=problem.code, message=problem.message, field=problem.field)


def user_errors(error: DomainError) -> list[UserError]:
    return [UserError.from_problem(p) for p in error.problems]


async def answer(payload: Callable[..., P], work: Callable[[], Awaitable[T]], build: Callable[[T], P]) -> P:
    """A mutation's payload: `build` of what `work` returns, or `payload(errors=...)` with the
    problems of the DomainError it raised (`work` is called here, so a DomainError raised
    while reading the input is answered the same way)."""
    try:
        done = await work()
    except DomainError as error:
        return payload(errors=user_errors(error))
    return build(done)


def is_internal(error: GraphQLError) -> bool:
    """An error raised by our code that no rule anticipated (a bug or an outage)."""
    original = error.original_error
    return error.path is not None and original is not None and not isinstance(original, (DomainError, GraphQLError))


def _request_error_code(error: GraphQLError) -> str:
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if error.original_error is not None or error.message.startswith("Variable '$"):
        return ErrorCode.VALIDATION.value
    return "GRAPHQL_VALIDATION_FAILED"


def public_error(error: GraphQLError) -> GraphQLError:
    """The error as a client may see it, always with `extensions.code`."""
    original = error.original_error
    if isinstance(original, DomainError):
        problem = original.problems[0]
        extensions = {"code": problem.code.value}
        if problem.field:
            extensions["field"] = problem.field
        return GraphQLError(str(original), error.nodes, path=error.path, original_error=original, extensions=extensions)
    if is_internal(error):
        return GraphQLError(
            "Internal server error", error.nodes, path=error.path, original_error=original, extensions={"code": INTERNAL}
        )
    if error.extensions and "code" in error.extensions:
        return error
    extensions = {**(error.extensions or {}), "code": _request_error_code(error)}
    return GraphQLError(
        error.message, error.nodes, error.source, error.positions, error.path, error.original_error, extensions
    )


def make_public(result: object) -> None:
    """Rewrite a result's errors in place with `public_error`."""
    errors = getattr(result, "errors", None)
    if errors:
        result.errors = [public_error(e) for e in errors]  # type: ignore[attr-defined]


def log_errors(errors: list[GraphQLError]) -> None:
    """Our faults at error level with the traceback; clients' mistakes at debug level."""
    for error in errors:
        if is_internal(error):
            log.error("resolver failed at %s: %s", error.path, error.original_error, exc_info=error.original_error)
        else:
            log.debug("client error: %s", error.message)
