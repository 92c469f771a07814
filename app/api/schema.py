"""The schema: the domains' queries, mutations and subscriptions, and the request guards."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
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
from app.api.errors import log_errors, make_public
from app.api.execution import Executor
from app.api.scalars import DATETIME_SCALAR, DateTime
from app.api.sale.schema import SaleMutation, SaleQuery, Subscription

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


@strawberry.type
class Query(CatalogQuery, SaleQuery):
    pass


@strawberry.type
class Mutation(CatalogMutation, SaleMutation):
    pass


class Schema(strawberry.Schema):
    """Every result leaves with public errors only (see api/errors.py), on HTTP and websockets.

    Errors are rewritten here rather than in an extension because parse
    errors never reach an extension's result.
    """

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_errors(errors)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().execute(*args, **kwargs)
        make_public(result)
        return result

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        return _public_stream(await super().stream(*args, **kwargs))


async def _public_stream(source: Any) -> AsyncGenerator[Any, None]:
    try:
        async for result in source:
            make_public(result)
            yield result
    finally:
        await source.aclose()


def fixed_validation_rules(*limiters: AddValidationRules) -> Callable[[], AddValidationRules]:
    """A factory adding the limiters' rules, the same rule classes on every request.

    `QueryDepthLimiter` and `MaxAliasesLimiter` build a new rule class each
    time one is constructed, and `ValidationCache` keys its LRU cache on the
    rule classes: a factory such as `lambda: QueryDepthLimiter(max_depth=10)`
    gives every request a different key, so every request ran graphql-core's
    `validate` again (DESIGN section 6). The limiters are built once here, and
    each request gets a fresh extension that adds these same classes.
    """
    rules = [rule for limiter in limiters for rule in limiter.validation_rules]
    return lambda: AddValidationRules(rules)


def build_schema(max_depth: int = MAX_DEPTH) -> Schema:
    """The API's schema with its caches and limits (extensions are factories, not instances).

    Introspection fields do not count towards the depth, so GraphiQL keeps working.
    An identical document is parsed and validated once (until it leaves the
    caches' LRU); a refused document stays refused, since its errors are what
    the validation cache keeps.
    """
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={DateTime: DATETIME_SCALAR}),
        execution_context_class=Executor,
        extensions=[
            fixed_validation_rules(
                QueryDepthLimiter(max_depth=max_depth),
                MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            ),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            ParserCache,
            ValidationCache,
        ],
    )
