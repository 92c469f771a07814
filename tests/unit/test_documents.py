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


def test_kept_documents_share_their_field_sets_and_stay_the_same_documents():
    """Held by every open subscription, a kept entry does not carry a set of its own (728 bytes)."""
    from app.queue.models import QueueEntry, QueueStatus

    def entry(seq: int) -> QueueEntry:
        return QueueEntry.from_doc({"_id": ObjectId(), "eventId": ObjectId(), "userId": f"buyer-{seq}", "seq": seq,
                                    "status": "WAITING", "joinedAtUtc": 1, "expiresAtUtc": 2})

    first, second = entry(1), entry(2)
    assert first.__pydantic_fields_set__ is not second.__pydantic_fields_set__
    stored = first.to_doc()
    kept_first, kept_second = first.kept(), second.kept()
    assert kept_first.__pydantic_fields_set__ is kept_second.__pydantic_fields_set__
    assert kept_first.to_doc() == stored and kept_second.seq == 2
    shared = set(kept_first.__pydantic_fields_set__)
    closed = kept_first.model_copy(update={"status": QueueStatus.CLOSED})  # a copy takes a set of its own
    assert closed.status is QueueStatus.CLOSED and kept_first.status is QueueStatus.WAITING
    assert kept_second.__pydantic_fields_set__ == shared
