"""Typed business errors: what services raise and what clients receive as `UserError`s.

A service raises `DomainError` carrying one or more `Problem`s. The GraphQL
layer turns them into the `errors` list of a mutation payload, or into a
top-level error with `extensions.code` on queries. `ErrorCode` is the
contract's enum, defined once here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCode(Enum):
    VALIDATION = "VALIDATION"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    DUPLICATE_EVENT = "DUPLICATE_EVENT"
    DUPLICATE_TICKET_TYPE = "DUPLICATE_TICKET_TYPE"
    EVENT_CANCELLED = "EVENT_CANCELLED"
    EVENT_NOT_ON_SALE = "EVENT_NOT_ON_SALE"
    QUEUE_COOLDOWN = "QUEUE_COOLDOWN"
    NOT_IN_QUEUE = "NOT_IN_QUEUE"
    NOT_ADMITTED = "NOT_ADMITTED"
    CHECKOUT_LIMIT_REACHED = "CHECKOUT_LIMIT_REACHED"
    NO_ACTIVE_CHECKOUT = "NO_ACTIVE_CHECKOUT"
    CHECKOUT_EXPIRED = "CHECKOUT_EXPIRED"
    SALE_NOT_OPEN = "SALE_NOT_OPEN"
    SALE_ENDED = "SALE_ENDED"
    SOLD_OUT = "SOLD_OUT"
    INSUFFICIENT_INVENTORY = "INSUFFICIENT_INVENTORY"
    PURCHASE_LIMIT_EXCEEDED = "PURCHASE_LIMIT_EXCEEDED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    TICKET_ALREADY_USED = "TICKET_ALREADY_USED"
    TICKET_CANCELLED = "TICKET_CANCELLED"
    RATE_LIMITED = "RATE_LIMITED"
    # Ours, beyond the contract: a purchase cut short by a crash was undone by the repair.
    PURCHASE_INTERRUPTED = "PURCHASE_INTERRUPTED"
    # A gate scanned a ticket of another event than the one it checks in for.
    WRONG_EVENT = "WRONG_EVENT"
    # The waitlist opens once nothing is left to claim; before that, the queue is the way in.
    NOT_SOLD_OUT = "NOT_SOLD_OUT"
    NOT_ON_WAITLIST = "NOT_ON_WAITLIST"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request; `field` is the dotted input path at fault."""

    code: ErrorCode
    message: str
    field: str | None = None


class DomainError(Exception):
    """A business rule refused the request; nothing was written."""

    def __init__(self, *problems: Problem) -> None:
        if not problems:
            raise ValueError("DomainError needs at least one problem")
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems

    @property
    def code(self) -> ErrorCode:
        return self.problems[0].code


def fail(code: ErrorCode, message: str, field: str | None = None) -> DomainError:
    """A DomainError with a single problem, ready to raise."""
    return DomainError(Problem(code, message, field))


def not_found(what: str, field: str | None = None) -> DomainError:
    return fail(ErrorCode.NOT_FOUND, f"{what} not found", field)


class Checker:
    """Collects every VALIDATION problem of an input, then raises them together."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def require(self, ok: bool, field: str, message: str) -> bool:
        """Record a VALIDATION problem at `field` unless `ok`; return `ok`."""
        if not ok:
            self.problems.append(Problem(ErrorCode.VALIDATION, message, field))
        return ok

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def raise_if_any(self) -> None:
        if self.problems:
            raise DomainError(*self.problems)
