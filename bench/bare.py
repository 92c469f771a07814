"""The reads scenario's yardstick: a bare aiohttp handler doing Q2's database reads.

`python -m bench.bare PORT MONGODB_URI` serves POST /graphql: it reads the
request's JSON, finds the event by `_id` and its ticket types by `eventId`
(the two finds Q2 costs the app), and answers them as JSON, with the same
driver and pool size as the app. No GraphQL, no auth, no context: what is
left is the database and the HTTP server, the floor the app is held to.
"""

from __future__ import annotations

import sys

from aiohttp import web
from bson import ObjectId, json_util

from pymongo import AsyncMongoClient

from app.catalog.repository import UNSEEN
from app.db import POOL_SIZE
from app.serve import BACKLOG


async def _event(request: web.Request) -> web.Response:
    body = await request.json()
    oid = ObjectId(body["variables"]["id"])
    db = request.app["db"]
    event = await db.events.find_one({"_id": oid}, projection=UNSEEN)  # as the app reads it
    types = await db.eventTickets.find({"eventId": oid}).to_list()
    text = json_util.dumps({"data": {"event": event, "ticketTypes": types}})
    return web.Response(text=text, content_type="application/json")


def main(port: int, uri: str) -> None:
    client = AsyncMongoClient(uri, maxPoolSize=POOL_SIZE, tz_aware=True)
    app = web.Application()
    app["db"] = client.get_default_database()
    app.router.add_post("/graphql", _event)
    print(f"bare handler on {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, backlog=BACKLOG, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
