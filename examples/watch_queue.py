"""Watch your place in an event's queue over graphql-transport-ws, as Apollo's GraphQLWsLink does.

    .venv/bin/python examples/watch_queue.py EVENT_ID TOKEN [http://127.0.0.1:8000/graphql]

Prints every message of the `queueUpdates` subscription until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

DOCUMENT = (Path(__file__).resolve().parent.parent / "graphql" / "sale" / "QueueUpdates.graphql").read_text()


async def watch(event_id: str, token: str, url: str) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        ack = await ws.receive()
        if ack.type != aiohttp.WSMsgType.TEXT or json.loads(ack.data)["type"] != "connection_ack":
            sys.exit(f"refused: {ack.data!r}")
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": DOCUMENT, "variables": {"eventId": event_id}}})
        async for message in ws:
            body = json.loads(message.data)
            if body["type"] == "ping":
                await ws.send_json({"type": "pong"})
            elif body["type"] in ("next", "error", "complete"):
                print(json.dumps(body.get("payload"), indent=None), flush=True)
                if body["type"] != "next":
                    return


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(watch(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:8000/graphql"))
