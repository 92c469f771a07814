"""The executor every operation runs on: Strawberry's, with subscription events that
forget what they memoised, and nothing that keeps an executor alive after its operation.

graphql-core 3.3 runs each subscription event on a shallow copy of the
subscription's executor (`build_per_event_executor`), so the copy shares the
memo of collected subfields, keyed by the identity of a list built afresh for
every event: nothing is ever found there, and every entry is kept. Measured
here: 20 objects kept per event pushed; after the 42,846 pushes of a
2,000-buyer rush the garbage collector's passes over them were a quarter of
the API's CPU, and each event cost 45 us at 2,000 events and 62 us at 20,000.
A per-event executor with its own memo keeps nothing and costs the same.

Most fields of a query are plain leaves: a scalar or enum read off an attribute
by Strawberry's default resolver. graphql-core gives each the whole path (an
info object of 15 fields, the resolver, Strawberry's wrapper around the
attribute read, the completion's type tests): 56 of Q2's 64 fields. Ours reads
the attribute and serializes it; anything that would be an error there (a null
where the type forbids one, a value the type refuses) takes graphql-core's path,
which reports it as before.

graphql-core also stores, on each executor, helpers made of two of its own
bound methods (`async_helpers`): a reference cycle, so no executor was freed
when its operation ended. Each request's executor, with the fields it had
collected (113 objects for Q2), waited for the garbage collector, whose
passes then found ~47,000 such objects each time and took ~60 ms: 130 us of
CPU per Q2, a tenth of it, and a 60 ms pause every ~450 requests (measured
2026-11-26, docs/BENCHMARKS.md). Ours reach the executor through weak references.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import (GRAPHQL_MAX_INT, GRAPHQL_MIN_INT, GraphQLBoolean, GraphQLField, GraphQLID, GraphQLInt,
                     GraphQLNonNull, GraphQLObjectType, GraphQLResolveInfoHelpers, GraphQLString, is_leaf_type)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import RefMap
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class Executor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, whose per-event copies memoise only for their own event,
    freed by reference counting as soon as its operation is done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_helpers()

    def _own_helpers(self) -> None:
        # Read by every field's info: held, but without the strong references that made the cycle.
        helpers = _WeakHelpers(self)
        self.async_helpers = GraphQLResolveInfoHelpers(gather=helpers.gather, track=helpers.track)

    def execute_field(  # noqa: PLR0917 - graphql-core's signature
        self, parent_type: GraphQLObjectType, source: Any, field_details_list: FieldDetailsList, path: Any,
        position_context: Any,
    ) -> Any:
        """A plain leaf's serialized attribute; any other field, graphql-core's whole path."""
        plain = _plain_leaves(parent_type).get(field_details_list[0].node.name.value)
        if plain is not None and self.middleware_manager is None:
            attribute, serialize, non_null = plain
            try:
                value = getattr(source, attribute)
                if value is None:
                    if not non_null:
                        return None
                else:
                    value = serialize(value)
                    if value is not None:
                        return value
            except Exception:  # noqa: BLE001, S110 - graphql-core's path reports it, as a field error
                pass
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        executor._own_helpers()  # not the subscription's, which may be gone before the event is
        return executor


class _WeakHelpers:
    """An executor's `gather` and `track`, reached through a weak reference to it (which outlives
    every call). Kept by every resolver info, so by each of ten thousand open subscriptions:
    small on purpose (about half the size of two closures over weak methods)."""

    __slots__ = ("_executor",)

    def __init__(self, executor: Executor) -> None:
        self._executor = weakref.ref(executor)

    def gather(self, awaitables: Any) -> Any:
        return self._executor().gather_async_work(awaitables)

    def track(self, awaitables: Any) -> None:
        self._executor().track_async_work(awaitables)


class PlainLeaf(NamedTuple):
    """How to read a field that is a plain leaf."""

    attribute: str  # the Python attribute Strawberry's default resolver reads
    serialize: Callable[[Any], Any]  # its GraphQL scalar or enum type's serializer (`serializer`)
    non_null: bool


def plain_leaf(field: GraphQLField) -> PlainLeaf | None:
    """How `field` is read, if it is a scalar or enum without arguments, read as an attribute
    by Strawberry's default resolver (no resolver, extensions or permissions); else None."""
    definition = (field.extensions or {}).get("strawberry-definition")
    # Strawberry marks the resolver it makes for a field without one of its own.
    if (definition is None or definition.extensions or field.args or definition.default_resolver is not getattr
            or not getattr(field.resolve, "_is_default", False)):
        return None
    non_null = isinstance(field.type, GraphQLNonNull)
    leaf = field.type.of_type if non_null else field.type
    return PlainLeaf(definition.python_name, serializer(leaf), non_null) if is_leaf_type(leaf) else None


def serializer(leaf: Any) -> Callable[[Any], Any]:
    """`leaf.serialize`, except that a built-in scalar's value of its exact Python type is passed
    straight through: what graphql-core's serializer returns for it, after its type tests."""
    return _PASSED.get(leaf, leaf.serialize)


def _string(value: Any) -> Any:
    return value if value.__class__ is str else GraphQLString.serialize(value)


def _id(value: Any) -> Any:
    return value if value.__class__ is str else GraphQLID.serialize(value)


def _int(value: Any) -> Any:
    return value if value.__class__ is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT else GraphQLInt.serialize(value)


def _boolean(value: Any) -> Any:
    return value if value.__class__ is bool else GraphQLBoolean.serialize(value)


_PASSED: dict[Any, Callable[[Any], Any]] = {GraphQLString: _string, GraphQLID: _id, GraphQLInt: _int,
                                           GraphQLBoolean: _boolean}


# Each object type's plain leaves by field name, found on first use (a schema's types are few).
_PLAIN: dict[GraphQLObjectType, dict[str, PlainLeaf]] = {}


def _plain_leaves(object_type: GraphQLObjectType) -> dict[str, PlainLeaf]:
    found = _PLAIN.get(object_type)
    if found is None:
        found = _PLAIN[object_type] = {
            name: leaf for name, field in object_type.fields.items() if (leaf := plain_leaf(field)) is not None}
    return found
