"""What an operation costs, counted before it runs (in the spirit of Shopify's calculated
query cost), so that one request cannot ask for the work of thousands.

Every object a field returns costs 1; scalars are free. A list multiplies what is
selected under it by how many items it may return: its `first` or `limit`
argument (a literal or a variable), else its known ceiling. Fields that cost the
database more than a read by id carry a weight: a search reads several windows
of an index. Introspection is free, so that GraphiQL always works. Over
MAX_COST the operation is refused with RATE_LIMITED, and every answer carries
`extensions.cost`.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    value_from_ast_untyped,
)

MAX_COST = 1000
# Items a list may return when no argument says: the API's own ceilings.
LIST_CEILING = {"ticketTypes": 3, "tickets": 10, "errors": 10, "myTickets": 100, "venues": 100, "searchEvents": 100}
DEFAULT_LIST_SIZE = 100
SIZE_ARGUMENTS = ("first", "limit")
# Fields whose own work is more than one read (added once per call, before its items).
WEIGHTS = {"searchEvents": 20, "events": 5, "venues": 5, "myTickets": 5}


class OperationCosts:
    """The costs of one prepared operation, remembered by the values of the variables that size
    its lists: all a cost depends on. Q2 has none, so its cost is counted once, not per request
    (a walk of its selection was about 50 us of each)."""

    MEMORY = 64  # sizes remembered per operation

    def __init__(self, schema: GraphQLSchema, operation: OperationDefinitionNode,
                 fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._counted = (schema, operation, fragments)
        self._sizing = sorted(_size_variables([operation, *fragments.values()]))
        self._known: dict[tuple[str, ...], int] = {}

    def __call__(self, variables: dict[str, Any] | None) -> int:
        """The cost with these variables."""
        key = tuple(repr((variables or {}).get(name)) for name in self._sizing)
        cost = self._known.get(key)
        if cost is None:
            if len(self._known) >= self.MEMORY:
                self._known.clear()
            cost = self._known[key] = operation_cost(*self._counted, variables)
        return cost


def _size_variables(nodes: list[Any]) -> set[str]:
    """The names of the variables any size argument (`first`, `limit`) of these nodes refers to."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, FieldNode):
            for argument in node.arguments or ():
                if argument.name.value in SIZE_ARGUMENTS:
                    found.update(_variables_in(argument.value))
        selections = getattr(node, "selection_set", None)
        for child in selections.selections if selections is not None else ():
            visit(child)

    for node in nodes:
        visit(node)
    return found


def _variables_in(value: Any) -> set[str]:
    if isinstance(value, VariableNode):
        return {value.name.value}
    inner = [*(getattr(value, "values", None) or ()), *(f.value for f in getattr(value, "fields", None) or ())]
    return set().union(*(_variables_in(v) for v in inner)) if inner else set()


def operation_cost(schema: GraphQLSchema, operation: OperationDefinitionNode,
                   fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any] | None) -> int:
    """The cost of running `operation` with these variables."""
    root = schema.get_root_type(operation.operation)
    return _selection_cost(root, operation.selection_set, _Walk(fragments, variables or {})) if root else 0


class _Walk:
    """What the walk carries: the document's fragments, the variables, the fragments being
    expanded, and the page size a connection's `first` gives its `edges`."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any],
                 visiting: frozenset[str] = frozenset(), page: int | None = None) -> None:
        self.fragments, self.variables, self.visiting, self.page = fragments, variables, visiting, page

    def inside(self, *, fragment: str | None = None, page: int | None = None) -> _Walk:
        return _Walk(self.fragments, self.variables, self.visiting | {fragment} if fragment else self.visiting, page)


def _selection_cost(parent: GraphQLObjectType, selections: SelectionSetNode, walk: _Walk) -> int:
    total = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            total += _field_cost(parent, selection, walk)
        elif isinstance(selection, InlineFragmentNode):
            on = parent
            if selection.type_condition is not None:
                named = parent if selection.type_condition.name.value == parent.name else None
                on = named or parent
            total += _selection_cost(on, selection.selection_set, walk)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = walk.fragments.get(name)
            if fragment is not None and name not in walk.visiting:  # a cycle is refused by validation anyway
                total += _selection_cost(parent, fragment.selection_set, walk.inside(fragment=name, page=walk.page))
    return total


def _field_cost(parent: GraphQLObjectType, node: FieldNode, walk: _Walk) -> int:
    name = node.name.value
    if name.startswith("__"):
        return 0
    definition = parent.fields.get(name)
    if definition is None:
        return 0
    field_type = definition.type
    inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    named = get_named_type(field_type)
    if not isinstance(named, GraphQLObjectType) or node.selection_set is None:
        return 0
    asked = _asked_size(node, walk.variables)
    if isinstance(inner, GraphQLList):
        size = asked if asked is not None else (walk.page if name == "edges" and walk.page is not None else None)
        ceiling = LIST_CEILING.get(name, DEFAULT_LIST_SIZE)
        each = (1 + _selection_cost(named, node.selection_set, walk.inside())) * min(
            ceiling if size is None else size, ceiling)
    else:  # a connection: its `first` sizes its `edges`
        each = 1 + _selection_cost(named, node.selection_set, walk.inside(page=asked))
    return WEIGHTS.get(name, 0) + each


def _asked_size(node: FieldNode, variables: dict[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value in SIZE_ARGUMENTS:
            value = (variables.get(argument.value.name.value) if isinstance(argument.value, VariableNode)
                     else value_from_ast_untyped(argument.value, variables))
            if isinstance(value, int) and value >= 0:
                return value
    return None
