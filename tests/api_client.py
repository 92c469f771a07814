"""One small client for the API: posts the operation documents kept in graphql/."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from app.appkeys import DB, RUNTIME

DOCUMENTS = Path(__file__).resolve().parent.parent / "graphql"


@cache
def document(name: str) -> str:
    """The text of graphql/**/<name>.graphql."""
    matches = list(DOCUMENTS.rglob(f"{name}.graphql"))
    assert len(matches) == 1, f"expected one document named {name}, found {matches}"
    return matches[0].read_text()


class ApiClient:
    def __init__(self, client: TestClient, app: web.Application) -> None:
        self.http = client
        self.app = app

    @property
    def db(self):
        return self.app[DB]

    @property
    def runtime(self):
        return self.app[RUNTIME]

    async def post(self, query: str, variables: dict | None = None, token: str | None = None, **headers: str) -> dict:
        """POST a GraphQL request; return the JSON body (asserting a 200)."""
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        assert response.status == 200, await response.text()
        return await response.json()

    async def op(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Send the named document from graphql/; return the whole body."""
        return await self.post(document(name), variables, token)

    async def data(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Send the named document and return `data`, asserting no top-level errors."""
        body = await self.op(name, variables, token)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def mutate(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Send a mutation document and return its payload (the single root field's value)."""
        data = await self.data(name, variables, token)
        (payload,) = data.values()
        return payload

    async def ok(self, name: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Send a mutation that must succeed; return its payload, asserting no user errors."""
        payload = await self.mutate(name, variables, token)
        assert payload["errors"] == [], payload["errors"]
        return payload
