"""Database commands counted by the server itself: `serverStatus` opcounters and `top`.

Counting on the server sees every command of every process (API, worker,
expiry jobs), which a client-side listener in one process would not. The
opcounters are server-wide (they include driver heartbeats and these very
probes); `top` splits the commands that name a collection by namespace, with
the server time spent on each.
"""

from __future__ import annotations

from pymongo import MongoClient

OPCOUNTERS = ("insert", "query", "update", "delete", "getmore", "command")


def snapshot(client: MongoClient, database: str) -> dict:
    """Opcounters, and per collection of `database` the `top` count and server microseconds."""
    status = client.admin.command("serverStatus")
    top = client.admin.command("top")["totals"]
    prefix = f"{database}."
    collections = {
        ns[len(prefix):]: {"count": v["total"]["count"], "micros": v["total"]["time"]}
        for ns, v in top.items()
        if ns.startswith(prefix)
    }
    return {"opcounters": {k: status["opcounters"].get(k, 0) for k in OPCOUNTERS}, "collections": collections}


def delta(before: dict, after: dict) -> dict:
    """What happened between two snapshots (the later probe's own serverStatus/top excluded)."""
    ops = {k: after["opcounters"][k] - before["opcounters"][k] for k in OPCOUNTERS}
    ops["command"] = max(0, ops["command"] - 2)  # the `serverStatus` and `top` of `after` count themselves
    collections = {}
    for name, now in after["collections"].items():
        was = before["collections"].get(name, {"count": 0, "micros": 0})
        count = now["count"] - was["count"]
        if count:
            collections[name] = {"count": count, "ms": round((now["micros"] - was["micros"]) / 1000, 1)}
    return {"opcounters": ops, "total": sum(ops.values()), "collections": collections}


def per_order(counted: dict, orders: int) -> dict:
    """Commands per order: inserts, queries, updates, other (delete, getmore, command) and total."""
    if orders <= 0:
        return {}
    ops = counted["opcounters"]
    other = ops["delete"] + ops["getmore"] + ops["command"]
    return {
        "insert": round(ops["insert"] / orders, 2), "query": round(ops["query"] / orders, 2),
        "update": round(ops["update"] / orders, 2), "other": round(other / orders, 2),
        "total": round(counted["total"] / orders, 2),
        "by_collection": {
            name: {"commands": round(v["count"] / orders, 2), "server_ms": round(v["ms"] / orders, 2)}
            for name, v in sorted(counted["collections"].items(), key=lambda kv: -kv[1]["count"])
        },
    }
