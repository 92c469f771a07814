"""Stored documents become models with ids as strings, however deep (app/documents.py)."""

from __future__ import annotations

from bson import ObjectId

from app.documents import _stringify_ids


def test_every_object_id_becomes_its_string_and_nothing_else_changes():
    ids = [ObjectId() for _ in range(5)]
    doc = {"_id": ids[0], "n": 3, "s": "text", "none": None, "nested": {"id": ids[1], "list": [ids[2], {"deep": ids[3]}, [ids[4]]]},
           "numbers": [1, 2.5, "x"]}
    assert _stringify_ids(doc) == {
        "_id": str(ids[0]), "n": 3, "s": "text", "none": None,
        "nested": {"id": str(ids[1]), "list": [str(ids[2]), {"deep": str(ids[3])}, [str(ids[4])]]},
        "numbers": [1, 2.5, "x"],
    }
    assert isinstance(doc["_id"], ObjectId)  # the stored document is left as it was
