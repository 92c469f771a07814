"""Ticket numbers people read, and confirmation codes nobody can guess."""

from __future__ import annotations

import secrets

# Crockford's base32: no I, L, O or U, so a number read aloud or retyped stays right.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ticket_number() -> str:
    """A unique-enough, human-readable number like TKT-7K3M-9QX2-PB4D (60 random bits).

    Uniqueness itself is the unique index's job; a clash is regenerated.
    """
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"TKT-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def confirmation_code() -> str:
    """128 bits from the OS's cryptographic source, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)
