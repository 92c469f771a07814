"""`--trace`: every command the rush sent to the product's database, from SecantusDB's profiler.

Profiling writes a document per command, which slows the rush: use it to see
what one order costs (`--buyers 1 --tickets 1 --buyer-processes 1 --trace`),
not for the figures. The commands go to `commands.jsonl` in the rush's folder.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pymongo.database import Database


def start(db: Database) -> None:
    """Record every command on `db` from now on."""
    db.command("profile", 2)


def stop_and_dump(db: Database, path: Path) -> dict:
    """Stop recording; write the commands to `path`; how many of each kind, and the sequence."""
    db.command("profile", 0)
    commands = list(db.system.profile.find({}, {"_id": 0}).sort("ts", 1))
    with path.open("w") as out:
        for c in commands:
            out.write(json.dumps(c, default=str) + "\n")
    steps = [_describe(c["command"]) for c in commands if c.get("ns") != f"{db.name}.system.profile"]
    return {"count": len(steps), "by_kind": dict(Counter(steps).most_common()), "sequence": steps, "file": str(path)}


def _describe(command: dict) -> str:
    """"collection.verb(filter fields)", e.g. "eventQueue.findAndModify(_id,status)"."""
    verb = next(iter(command))  # a command document names its command first
    collection = command[verb]
    spec = command.get("query") or command.get("filter")
    if spec is None and verb == "update":
        spec = (command.get("updates") or [{}])[0].get("q")
    if spec is None and verb == "aggregate":
        spec = next((s["$match"] for s in command.get("pipeline", []) if "$match" in s), None)
    fields = ",".join(spec) if isinstance(spec, dict) else ""
    return f"{collection}.{verb}({fields})"
