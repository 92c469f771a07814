"""The schema: the domains' queries, mutations and subscriptions, and the request guards."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Iterable
from functools import lru_cache
from typing import Any

import strawberry
from aiohttp import web
from graphql import (ASTValidationRule, DocumentNode, FragmentDefinitionNode, GraphQLError, NoSchemaIntrospectionCustomRule,
                     execute, get_operation_ast, parse,
                     specified_rules, validate)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution import create_source_event_stream, execute_subscription_event
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from app.api.catalog.mutations import CatalogMutation
from app.api.catalog.queries import CatalogQuery
from app.api.context import Context
from app.api.errors import log_errors, make_public
from app.api.execution import Executor
from app.api.flat_results import flat_shape
from app.api.plans import QueryPlan
from app.api.scalars import DATETIME_SCALAR, DateTime
from app.api.cost import MAX_COST, OperationCosts
from app.api.text_inputs import literal_problem, text_error
from app.errors import ErrorCode
from app.limits import Bucket
from app.api.checkin.schema import CheckinMutation
from app.api.flows.schema import FlowsMutation, FlowsSubscription
from app.api.orders.schema import OrdersMutation, OrdersQuery
from app.api.queue.schema import QueueMutation, QueueQuery, QueueSubscription
from app.api.waitlist.schema import WaitlistMutation, WaitlistQuery

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
# Documents kept parsed and validated for the fast path (`Schema.execute`).
PREPARED_DOCUMENTS = 1000


# Each domain's part of the API lives in app/api/<domain>/, as its rules live in app/<domain>/.
@strawberry.type
class Query(CatalogQuery, QueueQuery, OrdersQuery, WaitlistQuery):
    pass


@strawberry.type
class Mutation(CatalogMutation, QueueMutation, OrdersMutation, CheckinMutation, FlowsMutation, WaitlistMutation):
    pass


@strawberry.type
class Subscription(QueueSubscription, FlowsSubscription):
    pass


class Schema(strawberry.Schema):
    """Every result leaves with public errors only (see api/errors.py), on HTTP and websockets.

    Errors are rewritten here rather than in an extension because parse
    errors never reach an extension's result.

    A query or mutation whose document was seen before and passed every check
    is executed by graphql-core directly, without Strawberry's extension
    machinery around it: per request that machinery (an instance of each
    extension, their context managers, the execution context) cost about as
    much as executing Q2 itself (docs/BENCHMARKS.md, reads). Its first
    sighting, and every document that fails a check, still takes Strawberry's
    path, which answers the refusal.
    """

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_errors(errors)

    def __init__(self, *args: Any, fast_rules: list[type[ASTValidationRule]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast_rules = [*specified_rules, *fast_rules]
        self._prepared = lru_cache(maxsize=PREPARED_DOCUMENTS)(self._prepare)

    async def execute(  # noqa: PLR0917 - Strawberry's signature
        self, query: str | None, variable_values: dict[str, Any] | None = None, context_value: Any = None,
        root_value: Any = None, operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> Any:
        """A document seen before, valid and of an allowed kind, goes straight to graphql-core;
        anything else (its first sighting, a refusal, an error) takes Strawberry's whole path."""
        prepared = self._prepared(query, operation_name) if isinstance(query, str) else None
        allowed = DEFAULT_ALLOWED_OPERATION_TYPES if allowed_operation_types is None else allowed_operation_types
        refused = await self._refusal(prepared, variable_values, context_value)
        if refused is not None:
            result = ExecutionResult(data=None, errors=[refused])
        elif prepared is None or prepared[1] not in allowed or operation_extensions:
            result = await super().execute(query, variable_values, context_value, root_value, operation_name,
                                           allowed_operation_types, operation_extensions)
        elif prepared[4] is not None and (data := await prepared[4].run(context_value, root_value, variable_values)):
            result = ExecutionResult(data=data, errors=None)
        else:
            done = await await_maybe(execute(
                self._schema, prepared[0], root_value=root_value, context_value=context_value,
                variable_values=variable_values, operation_name=operation_name,
                executor_class=self.execution_context_class, is_awaitable=optimized_is_awaitable,
            ))
            if done.errors:
                self.process_errors(done.errors)
            result = ExecutionResult(data=done.data, errors=done.errors)
        make_public(result)
        return result

    def prepared_kind(self, query: str, operation_name: str | None) -> OperationType | None:
        """The kind of operation of a document seen before and valid; None for any other."""
        prepared = self._prepared(query, operation_name)
        return prepared[1] if prepared is not None else None

    def _prepare(self, query: str, operation_name: str | None) -> tuple | None:
        """The parsed document, its operation's kind, why one of its string literals is not text
        (if one is), its operation's costs (app/api/cost.py) and its plan (app/api/plans.py, a
        query's), if it parses within the token limit and passes every validation rule of the
        full path; else None."""
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or validate(self._schema, document, self._fast_rules):
            return None
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        return (document, OperationType(operation.operation.value), literal_problem(document),
                OperationCosts(self._schema, operation, fragments), QueryPlan.of(self._schema, document, operation, self.config.info_class))

    async def stream(  # noqa: PLR0917 - Strawberry's signature
        self, query: str | None, variable_values: dict[str, Any] | None = None, context_value: Any = None,
        root_value: Any = None, operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> Any:
        """As `execute`: a subscription seen before and valid goes straight to graphql-core's
        `subscribe`. Strawberry's path would hold an instance of each extension and their
        context managers for as long as the subscription stays open (ten thousand of them)."""
        prepared = self._prepared(query, operation_name) if isinstance(query, str) else None
        allowed = DEFAULT_ALLOWED_OPERATION_TYPES if allowed_operation_types is None else allowed_operation_types
        refused = await self._refusal(prepared, variable_values, context_value)
        if refused is not None:
            return _once(self._public(PreExecutionError(data=None, errors=[refused])))
        if (prepared is None or prepared[1] is not OperationType.SUBSCRIPTION or prepared[1] not in allowed
                or operation_extensions):
            if isinstance(context_value, Context):  # a query or mutation sent on the socket: loaders of its own
                context_value = context_value.for_operation()
            return _public_stream(await super().stream(
                query, variable_values, context_value, root_value, operation_name, operation_extensions,
                allowed_operation_types))
        return self._subscription(prepared[0], variable_values, context_value, root_value, operation_name)

    async def _subscription(
        self, document: DocumentNode, variable_values: dict[str, Any] | None, context_value: Any,
        root_value: Any, operation_name: str | None,
    ) -> AsyncGenerator[ExecutionResult, None]:
        """Strawberry's subscription stream, results and errors alike, without its extensions:
        graphql-core's `subscribe` composed by hand, so that an event of a flat selection is
        shaped directly (app/api/flat_results.py) and any other executes as `subscribe` would."""
        executor = self.execution_context_class.build(
            self._schema, document, root_value, context_value, variable_values, operation_name)
        if isinstance(executor, list):  # variables refused
            yield self._public(PreExecutionError(data=None, errors=executor))
            return
        source = await await_maybe(create_source_event_stream(executor))
        if isinstance(source, GraphQLExecutionResult):  # refused before it started: the resolver raised
            yield self._public(PreExecutionError(data=None, errors=source.errors))
            return
        shape = flat_shape(executor)
        if shape is not None:
            # The executor is only needed again for an event the shape cannot vouch for, which is
            # rare: rebuilt then, rather than kept (2.3 KB for each of ten thousand subscriptions).
            executor = None
        try:
            async for payload in source:
                data = shape(payload) if shape is not None else None
                if data is not None:
                    yield ExecutionResult(data=data, errors=None)
                    continue
                executor = executor or self.execution_context_class.build(
                    self._schema, document, root_value, context_value, variable_values, operation_name)
                event = await await_maybe(execute_subscription_event(executor.build_per_event_executor(payload)))
                yield self._public(ExecutionResult(data=event.data, errors=event.errors))
        except Exception as error:  # noqa: BLE001 - as Strawberry: graphql-core raises what a resolver raised
            coerced = error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
            yield self._public(ExecutionResult(data=None, errors=[coerced]))
        finally:
            await source.aclose()

    async def _refusal(self, prepared: tuple | None, variables: dict[str, Any] | None, context: Any) -> GraphQLError | None:
        """Why an operation may not run at all: a string that is not text, a cost over the
        ceiling (app/api/cost.py), or a client over its rate limit (app/limits.py); None if it may."""
        if prepared is None:  # it does not parse or validate: Strawberry's path refuses it
            return None
        refused = text_error(prepared[2], variables)
        if refused is not None:
            return refused
        cost = prepared[3](variables)
        if cost <= MAX_COST:
            return await _over_rate(context, cost) if isinstance(context, Context) else None
        return GraphQLError(
            f"This operation would cost {cost}, more than the {MAX_COST} one request may: ask for fewer items "
            "or fewer fields at once (each object costs 1, times the items of the lists around it).",
            extensions={"code": ErrorCode.RATE_LIMITED.value, "cost": {"requested": cost, "maximum": MAX_COST}},
        )

    def _public(self, result: ExecutionResult) -> ExecutionResult:
        if result.errors:
            self.process_errors(result.errors)
        make_public(result)
        return result


async def _over_rate(context: Context, cost: int) -> GraphQLError | None:
    """RATE_LIMITED if the caller's bucket cannot pay for this operation now, with when it can."""
    settings = context.settings
    wait = await context.runtime.limiter.take(
        context.client_key, max(cost, 1), Bucket(settings.rate_limit_per_second, settings.rate_limit_burst))
    if not wait:
        return None
    seconds = max(1, math.ceil(wait))
    if isinstance(context.response, web.Response):  # HTTP: the header clients and proxies know
        context.response.headers["Retry-After"] = str(seconds)
    return GraphQLError(f"Too many requests from this client: retry in {seconds} s.",
                        extensions={"code": ErrorCode.RATE_LIMITED.value, "retryAfterSeconds": seconds})


async def _once(result: ExecutionResult) -> AsyncGenerator[ExecutionResult, None]:
    """A stream of one result: a refusal, before anything ran."""
    yield result


async def _public_stream(source: Any) -> AsyncGenerator[Any, None]:
    try:
        async for result in source:
            make_public(result)
            yield result
    finally:
        await source.aclose()


def limit_rules(*limiters: AddValidationRules) -> list[type[ASTValidationRule]]:
    """The limiters' validation rules, built once: the same classes on every request.

    `QueryDepthLimiter` and `MaxAliasesLimiter` build a new rule class each
    time one is constructed, and `ValidationCache` keys its LRU cache on the
    rule classes: a factory such as `lambda: QueryDepthLimiter(max_depth=10)`
    gives every request a different key, so every request ran graphql-core's
    `validate` again (DESIGN section 6).
    """
    return [rule for limiter in limiters for rule in limiter.validation_rules]


def build_schema(max_depth: int = MAX_DEPTH, *, introspection: bool = True) -> Schema:
    """The API's schema with its caches and limits (extensions are factories, not instances).

    Introspection fields do not count towards the depth, so GraphiQL keeps working;
    without `introspection` (production's default) `__schema` and `__type` are refused.
    An identical document is parsed and validated once (until it leaves the
    caches' LRU); a refused document stays refused, since its errors are what
    the validation cache keeps.
    """
    limits = limit_rules(QueryDepthLimiter(max_depth=max_depth), MaxAliasesLimiter(max_alias_count=MAX_ALIASES))
    if not introspection:
        limits.append(NoSchemaIntrospectionCustomRule)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={DateTime: DATETIME_SCALAR}),
        execution_context_class=Executor,
        fast_rules=limits,
        extensions=[
            lambda: AddValidationRules(limits),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            ParserCache,
            ValidationCache,
        ],
    )
