"""A small graphql-transport-ws client: one subscription per websocket, as Apollo's GraphQLWsLink opens it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import aiohttp

PROTOCOL = "graphql-transport-ws"


class SubscriptionEnded(Exception):
    """The server completed the operation or closed the socket."""


class Subscription:
    """One operation on its own websocket; a reader task queues every result as it arrives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.received = 0
        self._inbox: asyncio.Queue[dict | None] = asyncio.Queue()
        # (wanted, future): the reader itself tests each result as it arrives (see `first`).
        self._watch: tuple[Callable[[dict], bool], asyncio.Future[float | None]] | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, http: aiohttp.ClientSession, url: str, token: str, query: str, variables: dict[str, Any]
    ) -> Subscription:
        """Connect, authenticate in connection_init, wait for the ack, and start the operation."""
        ws = await http.ws_connect(url, protocols=[PROTOCOL], autoping=True)
        try:
            if ws.protocol != PROTOCOL:
                raise SubscriptionEnded(f"server chose subprotocol {ws.protocol!r}")
            await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
            while True:
                message = await ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    raise SubscriptionEnded(f"socket closed before connection_ack ({ws.close_code})")
                kind = json.loads(message.data).get("type")
                if kind == "connection_ack":
                    break
                if kind == "ping":
                    await ws.send_json({"type": "pong"})
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})
        except BaseException:
            await ws.close()
            raise
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                body = json.loads(message.data)
                kind = body.get("type")
                if kind == "ping":
                    await self.ws.send_json({"type": "pong"})
                elif kind == "next":
                    self.received += 1
                    if self._watch is None:
                        self._inbox.put_nowait(body["payload"])
                    elif self._watch[0](body["payload"]):
                        self._watch[1].set_result(time.monotonic())
                        self._watch = None
                elif kind == "error":
                    errors = body.get("payload")
                    self._inbox.put_nowait({"data": None, "errors": errors if isinstance(errors, list) else [errors]})
                elif kind == "complete":
                    break
        finally:
            self._inbox.put_nowait(None)
            if self._watch is not None:
                self._watch[1].set_result(None)
                self._watch = None

    async def next(self) -> dict:
        """The next result payload ({"data": ..., "errors": ...}); SubscriptionEnded when there is none."""
        payload = await self._inbox.get()
        if payload is None:
            self._inbox.put_nowait(None)  # every later call ends too
            raise SubscriptionEnded(f"subscription ended (close code {self.ws.close_code})")
        return payload

    def first(self, wanted: Callable[[dict], bool]) -> asyncio.Future[float | None]:
        """When (monotonic) the first result for which `wanted` holds arrived, among those not yet
        read and those to come; the results before it are consumed; None if the stream ends first.

        The reader tests each result as it arrives: no task, queue hop or timer per result, so
        that ten thousand of them measure the server's pushes rather than this client's loop."""
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        while not self._inbox.empty():
            payload = self._inbox.get_nowait()
            if payload is None:
                self._inbox.put_nowait(None)
                future.set_result(None)
                return future
            if wanted(payload):
                future.set_result(time.monotonic())
                return future
        self._watch = (wanted, future)
        return future

    async def close(self) -> None:
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader
        with suppress(TimeoutError, aiohttp.ClientError, ConnectionError):  # it is going away either way
            await asyncio.wait_for(self.ws.close(), 5)
