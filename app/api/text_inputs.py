"""Every string a request carries is text (app/text.py), checked before anything runs.

One place for all of them: the variables, and the string literals written in
the document itself, of every operation on HTTP and on websockets. A refusal
is a top-level error with code VALIDATION naming where the string was; the
value itself is never echoed (it may be 200,000 characters long).
"""

from __future__ import annotations

from typing import Any

from graphql import DocumentNode, GraphQLError, StringValueNode, Visitor, visit

from app.errors import ErrorCode
from app.text import first_bad_text, text_problem


def text_error(literal: str | None, variables: dict[str, Any] | None) -> GraphQLError | None:
    """The refusal of a request whose document's literals (`literal`: `literal_problem` of its
    document, kept with the parsed document) or variables hold something that is not text."""
    if literal:
        return _refusal(f"A string in the document {literal}", None)
    found = first_bad_text(variables or {})
    if found:
        path, problem = found
        return _refusal(f"Variable '${path}' {problem}", path)
    return None


def literal_problem(document: DocumentNode) -> str | None:
    """Why a string literal written in the document is not text, if one is not."""
    found: list[str] = []

    class Strings(Visitor):
        def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
            problem = text_problem(node.value)
            if problem:
                found.append(problem)
                return Visitor.BREAK
            return None

    visit(document, Strings())
    return found[0] if found else None


def _refusal(message: str, field: str | None) -> GraphQLError:
    extensions = {"code": ErrorCode.VALIDATION.value} | ({"field": field} if field else {})
    return GraphQLError(message, extensions=extensions)
