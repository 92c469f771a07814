"""Subscription events whose selection is flat, shaped without an executor per event.

graphql-core executes a subscription's selection set afresh for every event
it pushes: a per-event executor, the fields collected, each field's resolver
called and its value completed. For `queueUpdates`, whose selection is a
handful of scalars read off one object, that cost about 85 us an event, the
largest part of a push to ten thousand waiting buyers (docs/BENCHMARKS.md).

When every field a subscription selects under its root field is a leaf
(scalar or enum) without arguments, read by Strawberry's default resolver
(an attribute, no field extensions or permissions), the event's result is
that attribute of each field, serialized by its type. That is what the
executor would compute; `FlatShape` computes it directly. Anything it cannot
vouch for (a null where the type forbids one, a value its type refuses)
makes it answer None, and the caller executes that event the usual way, so
errors read exactly as before. The fields are collected by graphql-core's
own `collect_fields`, so fragments and `@skip`/`@include` mean what they mean.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from graphql import GraphQLNonNull, GraphQLObjectType
from graphql.execution import Executor
from graphql.execution.collect_fields import collect_fields, collect_subfields

from app.api.execution import plain_leaf

# Shapes built so far, shared by every subscription selecting the same fields (bounded).
_SHAPES: dict[tuple, FlatShape] = {}
MAX_SHAPES = 1000


class _Leaf(NamedTuple):
    key: str  # the response name (an alias, or the field's name)
    attribute: str | None  # the Python attribute it is read from; None for __typename
    serialize: Any  # its GraphQL scalar or enum type's serializer
    non_null: bool


class FlatShape:
    """The result of one event, computed from the payload's attributes."""

    def __init__(self, root_key: str, type_name: str, leaves: tuple[_Leaf, ...]) -> None:
        self.root_key, self.type_name, self.leaves = root_key, type_name, leaves

    def __call__(self, payload: Any) -> dict[str, Any] | None:
        """`{root: {field: value}}` for this payload; None if only the executor may answer."""
        if payload is None:
            return None
        out: dict[str, Any] = {}
        try:
            for key, attribute, serialize, non_null in self.leaves:
                if attribute is None:
                    out[key] = self.type_name
                    continue
                value = getattr(payload, attribute)
                if value is not None:
                    value = serialize(value)
                if value is None and non_null:
                    return None
                out[key] = value
        except Exception:  # noqa: BLE001 - the executor says what is wrong with it, as a field error
            return None
        return {self.root_key: out}


def flat_shape(executor: Executor) -> FlatShape | None:
    """The shape of the subscription `executor` runs, if its selection is flat; else None."""
    schema = executor.schema
    root_type = schema.subscription_type
    if root_type is None:
        return None
    root_fields = collect_fields(schema, executor.fragments, executor.variable_values, root_type,
                                 executor.operation, executor.hide_suggestions).grouped_field_set
    if len(root_fields) != 1:
        return None
    ((root_key, details),) = root_fields.items()
    root_def = root_type.fields.get(details[0].node.name.value)
    if root_def is None:
        return None
    object_type = root_def.type.of_type if isinstance(root_def.type, GraphQLNonNull) else root_def.type
    if not isinstance(object_type, GraphQLObjectType):
        return None
    fields = collect_subfields(schema, executor.fragments, executor.variable_values, executor.operation,
                               object_type, details, executor.hide_suggestions).grouped_field_set
    leaves = []
    for key, field_details in fields.items():
        leaf = _leaf(object_type, key, field_details[0].node)
        if leaf is None:
            return None
        leaves.append(leaf)
    identity = (root_key, object_type.name, *leaves)
    shape = _SHAPES.get(identity)
    if shape is None:
        if len(_SHAPES) >= MAX_SHAPES:
            _SHAPES.clear()
        shape = _SHAPES[identity] = FlatShape(root_key, object_type.name, tuple(leaves))
    return shape


def _leaf(object_type: GraphQLObjectType, key: str, node: Any) -> _Leaf | None:
    """How to read one selected field, if it is a plain leaf (app/api/execution.py)."""
    if node.name.value == "__typename":
        return _Leaf(key, None, None, True)
    field = object_type.fields.get(node.name.value)
    plain = plain_leaf(field) if field is not None and not node.arguments else None
    return _Leaf(key, *plain) if plain is not None else None
