"""Query plans: a query seen before, executed by a plan built once for its document.

graphql-core executes a document by walking it on every request: the fields
collected, an info object of 15 fields, a path and Strawberry's wrapper for
each field, the type tests of the completion for each value. For Q2 that walk
cost about as much as the API's whole answer above the database reads
(docs/BENCHMARKS.md, reads). The walk's outcome depends only on the document,
so a `QueryPlan` does it once, when the document is first prepared: per object
type, the fields to read, how to read each one (an attribute, or the field's
own resolver with its arguments) and how to complete its value. A request then
reads its values and calls its resolvers, and nothing else.

It answers only what it can vouch for. Anything else on the way (a resolver
that raises, a null where the type forbids one, a value its type refuses)
makes `run` answer None, and the caller executes the query with graphql-core,
which answers it as it always has, errors and all. Queries only: they may be
run twice; mutations never are. A document whose fields depend on its
variables (`@skip(if: $x)`), with fragment variables, `@defer`/`@stream`,
abstract types or introspection, gets no plan.

Resolvers that return awaitables are started together, a wave at a time (all
the ticket types of a page of events at once, as the DataLoaders expect), and
their values completed when the wave is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

from graphql import (DirectiveNode, DocumentNode, FieldNode, FragmentDefinitionNode, GraphQLBoolean, GraphQLField,
                     GraphQLFloat, GraphQLID, GraphQLInt, GraphQLList, GraphQLNonNull, GraphQLString, GraphQLObjectType, GraphQLResolveInfoHelpers, GraphQLSchema, OperationDefinitionNode,
                     OperationType, VariableNode, is_leaf_type, visit)
from graphql.execution.collect_fields import FieldDetailsList, FragmentDetails, collect_fields, collect_subfields
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.language import Visitor
from graphql.pyutils import Path
from strawberry.execution import optimized_is_awaitable
# Strawberry's info for graphql-core (it adds `operation_extensions`): what its resolvers expect.
from strawberry.schema.schema import _OperationContextAwareGraphQLResolveInfo as ResolveInfo

from app.api.execution import plain_leaf, serializer

NO_VARIABLES = VariableValues(sources={}, coerced={})


class _Bail(Exception):  # noqa: N818 - not an error: "graphql-core answers this one"
    """The plan cannot vouch for this answer."""


Complete = Callable[[Any, "_Run", Path | None], Any]


class _Field(NamedTuple):
    key: str  # the response name
    plain: Any  # a plain leaf (app/api/execution.py `PlainLeaf`), read and serialized here
    attribute: str | None  # else an attribute read by Strawberry's default resolver, then completed
    definition: GraphQLField | None  # else the field's own resolver, called with an info
    nodes: list[FieldNode]
    arguments: dict[str, Any] | None  # the arguments, when they are literals (else coerced per request)
    call: _Call | None  # how to call its Strawberry resolver directly, when that is all its wrapper would do
    complete: Complete | None
    typename: str | None  # `__typename`: the object's type name


class QueryPlan:
    """A query document's fields, collected and resolved once; `run` answers a request."""

    def __init__(self, schema: GraphQLSchema, operation: OperationDefinitionNode,
                 fragments: dict[str, FragmentDefinitionNode], info_class: type) -> None:
        self.schema, self.operation, self.fragments, self.info_class = schema, operation, fragments, info_class
        self._details = {name: FragmentDetails(definition) for name, definition in fragments.items()}
        root = schema.query_type
        grouped = collect_fields(schema, self._details, NO_VARIABLES, root, operation).grouped_field_set
        self.root = _ObjectPlan(root, self._fields(root, grouped))

    @classmethod
    def of(cls, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
           info_class: type) -> QueryPlan | None:
        """The plan of a valid document's operation (`info_class`: Strawberry's, for its resolvers),
        or None if it is not one a plan may answer."""
        if operation.operation is not OperationType.QUERY or not _plain_directives(document):
            return None
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        if any(f.variable_definitions for f in fragments.values()):
            return None
        try:
            return cls(schema, operation, fragments, info_class)
        except _Bail:
            return None

    async def run(self, context: Any, root_value: Any, raw_variables: dict[str, Any] | None) -> dict[str, Any] | None:
        """The query's `data`; None when only graphql-core may answer it (see the module's docstring)."""
        variables = get_variable_values(self.schema, self.operation.variable_definitions or (), raw_variables or {},
                                        max_errors=50)
        if isinstance(variables, list):  # graphql-core reports them
            return None
        run = _Run(self, context, root_value, variables)
        try:
            data = self.root.complete(root_value, run, None)
            while run.pending:
                wave, run.pending = run.pending, []
                values = await _settle([awaitable for awaitable, *_ in wave])
                for (_, holder, key, complete, path), value in zip(wave, values, strict=True):
                    if isinstance(value, BaseException):
                        raise _Bail from value
                    holder[key] = complete(value, run, path)
        except Exception:  # noqa: BLE001 - _Bail, or a resolver's error: graphql-core reports it
            for awaitable, *_ in run.pending:
                if asyncio.iscoroutine(awaitable):
                    awaitable.close()  # never started: nothing to settle
            return None
        finally:
            if run.tracked:  # work a resolver asked to be waited for (info.async_helpers.track)
                await asyncio.gather(*run.tracked, return_exceptions=True)
        return data

    def _fields(self, object_type: GraphQLObjectType, grouped: dict[str, FieldDetailsList]) -> tuple[_Field, ...]:
        fields = []
        for key, details in grouped.items():
            node = details[0].node
            name = node.name.value
            if any(d.defer_usage is not None or d.fragment_variable_values is not None for d in details):
                raise _Bail
            if name == "__typename":
                fields.append(_Field(key, None, None, None, [], None, None, None, object_type.name))
                continue
            definition = object_type.fields.get(name)
            if definition is None or name.startswith("__"):
                raise _Bail
            plain = plain_leaf(definition)
            nodes = [d.node for d in details]
            if plain is not None:
                fields.append(_Field(key, plain, None, None, nodes, None, None, None, None))
                continue
            complete = self._completer(definition.type, details)
            strawberry = (definition.extensions or {}).get("strawberry-definition")
            if getattr(definition.resolve, "_is_default", False) and strawberry is not None and not definition.args:
                fields.append(_Field(key, None, strawberry.python_name, None, nodes, None, None, complete, None))
                continue
            if definition.resolve is None:
                raise _Bail
            literal = not any(_has_variable(a.value) for a in node.arguments or ())
            arguments = get_argument_values(definition, node, NO_VARIABLES) if literal else None
            fields.append(_Field(key, None, None, definition, nodes, arguments, _Call.of(definition, self.info_class),
                                 complete, None))
        return tuple(fields)

    def _completer(self, field_type: Any, details: FieldDetailsList) -> Complete:
        """How a resolved value of `field_type` becomes its answer (graphql-core's `complete_value`)."""
        if isinstance(field_type, GraphQLNonNull):
            inner = self._completer(field_type.of_type, details)

            def non_null(value: Any, run: _Run, path: Path | None) -> Any:
                if value is None:
                    raise _Bail
                return inner(value, run, path)

            return non_null
        inner = self._nullable_completer(field_type, details)

        def nullable(value: Any, run: _Run, path: Path | None) -> Any:
            return None if value is None else inner(value, run, path)

        return nullable

    def _nullable_completer(self, field_type: Any, details: FieldDetailsList) -> Complete:
        if isinstance(field_type, GraphQLList):
            item = self._completer(field_type.of_type, details)

            def items(value: Any, run: _Run, path: Path | None) -> list[Any]:
                if value.__class__ is not list and (isinstance(value, str | bytes | dict) or not isinstance(value, Iterable)):
                    raise _Bail  # (a list is tested first: `Iterable` is an ABC, slow to test)
                return [item(v, run, Path(path, i, None)) for i, v in enumerate(value)]

            return items
        if is_leaf_type(field_type):
            serialize = serializer(field_type)

            def leaf(value: Any, _run: _Run, _path: Path | None) -> Any:
                serialized = serialize(value)
                if serialized is None:
                    raise _Bail
                return serialized

            return leaf
        if not isinstance(field_type, GraphQLObjectType) or field_type.is_type_of is not None:
            raise _Bail  # abstract types, and types that check what their resolvers return
        grouped = collect_subfields(self.schema, self._details, NO_VARIABLES, self.operation, field_type,
                                    details).grouped_field_set
        return _ObjectPlan(field_type, self._fields(field_type, grouped)).complete


_BUILT_IN_SCALARS = (GraphQLString, GraphQLInt, GraphQLFloat, GraphQLBoolean, GraphQLID)


class _Call:
    """A field's Strawberry resolver, called as Strawberry's wrapper would call it.

    For a resolver without extensions or permissions whose arguments are built-in
    scalars, the wrapper (an Info, the arguments renamed and converted, the chain
    of extensions, the reserved parameters) comes down to: the source as `self`,
    the Info and the arguments by their Python names. Made once per field here,
    it saved ~8 us of each of Q2's five resolver calls. Fields of union types, whose
    errors Strawberry's exception handlers may answer, never come here (no plan).
    """

    def __init__(self, resolver: Any, info_class: type, field: Any, names: dict[str, str]) -> None:
        self.resolver, self.info_class, self.field, self.names = resolver, info_class, field, names
        self.pass_self = resolver.self_parameter is not None
        self.source_names = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None]
        self.info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    @classmethod
    def of(cls, definition: GraphQLField, info_class: type) -> _Call | None:
        field = (definition.extensions or {}).get("strawberry-definition")
        resolver = getattr(field, "base_resolver", None)
        if resolver is None or field.extensions or len(field.arguments) != len(definition.args):
            return None
        for argument in definition.args.values():
            kind = argument.type.of_type if isinstance(argument.type, GraphQLNonNull) else argument.type
            if kind not in _BUILT_IN_SCALARS:
                return None
        # Strawberry names the GraphQL arguments in the order of the Python ones.
        names = {name: argument.python_name for name, argument in zip(definition.args, field.arguments, strict=True)}
        return cls(resolver, info_class, field, names)

    def __call__(self, source: Any, raw_info: Any, arguments: dict[str, Any]) -> Any:
        names = self.names
        kwargs = {names[name]: value for name, value in arguments.items()}
        for name in self.source_names:
            kwargs[name] = source
        if self.info_name is not None:
            kwargs[self.info_name] = self.info_class(_raw_info=raw_info, _field=self.field)
        return self.resolver(source, **kwargs) if self.pass_self else self.resolver(**kwargs)


class _ObjectPlan:
    """The selected fields of one object type."""

    def __init__(self, object_type: GraphQLObjectType, fields: tuple[_Field, ...]) -> None:
        self.object_type, self.type_name, self.fields = object_type, object_type.name, fields

    def complete(self, source: Any, run: _Run, path: Path | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, plain, attribute, definition, nodes, arguments, call, complete, typename in self.fields:
            if plain is not None:
                value = getattr(source, plain.attribute)
                if value is None:
                    if plain.non_null:
                        raise _Bail
                else:
                    value = plain.serialize(value)
                    if value is None:
                        raise _Bail
                out[key] = value
            elif typename is not None:
                out[key] = typename
            elif attribute is not None:
                out[key] = complete(getattr(source, attribute), run, Path(path, key, self.type_name))
            else:
                field_path = Path(path, key, self.type_name)
                if arguments is None:
                    arguments = get_argument_values(definition, nodes[0], run.variables)
                info = run.info(definition, nodes, self.object_type, field_path)
                value = (call(source, info, arguments) if call is not None
                         else definition.resolve(source, info, **arguments))
                if optimized_is_awaitable(value):
                    out[key] = None  # its place, in order, until the wave it is part of is in
                    run.pending.append((value, out, key, complete, field_path))
                else:
                    out[key] = complete(value, run, field_path)
        return out


class _Run:
    """One request's state: its context, variables and the resolvers still awaited."""

    def __init__(self, plan: QueryPlan, context: Any, root_value: Any, variables: VariableValues) -> None:
        self.plan, self.context, self.root_value, self.variables = plan, context, root_value, variables
        self.pending: list[tuple[Awaitable[Any], dict[str, Any], str, Complete, Path]] = []
        self.tracked: list[Awaitable[Any]] = []
        self.helpers = GraphQLResolveInfoHelpers(gather=_gather, track=self.tracked.extend)

    def info(self, definition: GraphQLField, nodes: list[FieldNode], parent: GraphQLObjectType, path: Path) -> Any:
        """What graphql-core would pass the field's resolver."""
        plan = self.plan
        return ResolveInfo(
            nodes[0].name.value, nodes, definition.type, parent, path, plan.schema,
            plan.fragments, self.root_value, plan.operation, self.variables.coerced, self.context,
            optimized_is_awaitable, None, self.helpers, None,
        )


async def _settle(awaitables: list[Awaitable[Any]]) -> list[Any]:
    """Every value, or the exception in its place, once all are settled."""
    if len(awaitables) == 1:  # no task for the usual case
        try:
            return [await awaitables[0]]
        except Exception as error:  # noqa: BLE001 - handed back in its place
            return [error]
    return await asyncio.gather(*awaitables, return_exceptions=True)


async def _gather(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    return await asyncio.gather(*awaitables)


def _has_variable(value: Any) -> bool:
    found = []
    visit(value, _VariableFinder(found))
    return bool(found)


class _VariableFinder(Visitor):
    def __init__(self, found: list[VariableNode]) -> None:
        super().__init__()
        self.found = found

    def enter_variable(self, node: VariableNode, *_args: Any) -> None:
        self.found.append(node)


class _DirectiveCheck(Visitor):
    """Whether every directive is a `@skip` or `@include` whose condition is a literal."""

    def __init__(self) -> None:
        super().__init__()
        self.plain = True

    def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
        if node.name.value not in ("skip", "include") or any(_has_variable(a.value) for a in node.arguments or ()):
            self.plain = False


def _plain_directives(document: DocumentNode) -> bool:
    check = _DirectiveCheck()
    visit(document, check)
    return check.plain

