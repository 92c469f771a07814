"""Mapping between MongoDB documents and pydantic models, in one place.

Models use snake_case attributes with the stored camelCase names as aliases.
`Document.from_doc` reads a stored document (ObjectIds become strings);
`to_doc` writes one back (the id fields listed in `object_id_fields` become
ObjectIds again). Ids travel through the API as 24-hex strings.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import BaseModel, ConfigDict, Field

from app.errors import not_found


def parse_object_id(value: str, what: str, field: str | None = None) -> ObjectId:
    """`value` as an ObjectId; a malformed id is NOT_FOUND (no such thing can exist)."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise not_found(what, field) from None


class Document(BaseModel):
    """A stored document; `id` is the `_id`."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)
    # Stored names (dotted for nested ones) of fields kept as ObjectId besides `_id`.
    object_id_fields: ClassVar[frozenset[str]] = frozenset()

    id: str = Field(alias="_id")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        return cls.model_validate(_stringify_ids(doc))

    def to_doc(self) -> dict[str, Any]:
        doc = self.model_dump(by_alias=True, mode="json")
        doc["_id"] = ObjectId(doc["_id"])
        for path in self.object_id_fields:
            *parents, leaf = path.split(".")
            holder = doc
            for key in parents:
                holder = holder.get(key) or {}
            if holder.get(leaf) is not None:
                holder[leaf] = ObjectId(holder[leaf])
        return doc

    def kept(self) -> Self:
        """This document, to be held for long (one per open subscription): pydantic gives every
        instance a set of its own naming the fields it was given (728 bytes for a queue entry),
        which nothing here reads (documents are frozen; a copy copies the set). Kept documents
        of one class and fields share one."""
        fields = self.__pydantic_fields_set__
        shared = _KEPT_FIELD_SETS.setdefault((type(self), frozenset(fields)), fields)
        object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self


# The field sets kept documents share: a few per class (which optional fields were stored).
_KEPT_FIELD_SETS: dict[tuple[type, frozenset[str]], set[str]] = {}


def _stringify_ids(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with every ObjectId in it, however deep, as its string. Values are tested by exact
    type, and plain ones copied without a call: a read of an event and its ticket types made
    41 calls of a recursive version, one per value."""
    out = {}
    for key, value in doc.items():
        kind = type(value)
        if kind is ObjectId:
            value = str(value)
        elif kind is dict:
            value = _stringify_ids(value)
        elif kind is list:
            value = [_stringify_value(item) for item in value]
        out[key] = value
    return out


def _stringify_value(value: Any) -> Any:
    kind = type(value)
    if kind is ObjectId:
        return str(value)
    if kind is dict:
        return _stringify_ids(value)
    if kind is list:
        return [_stringify_value(item) for item in value]
    return value
