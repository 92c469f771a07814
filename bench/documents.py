"""The operation documents clients send, read from graphql/ (the same files the tests and apps use)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

DOCUMENTS = Path(__file__).resolve().parents[1] / "graphql"


@cache
def document(name: str) -> str:
    """The text of graphql/**/<name>.graphql."""
    (path,) = DOCUMENTS.rglob(f"{name}.graphql")
    return path.read_text()
