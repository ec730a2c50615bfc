"""A readable example of a site's study ID format, made from its regular expression.

Nurses never see the expression itself (``STO-\\d{3}``); they see an example (``STO-001``). The
example is built from the parsed expression and then checked against it, so an expression this
cannot follow gives no example rather than a wrong one.
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
from functools import lru_cache
from typing import Any

#: The character each class stands for in an example.
_CATEGORY_CHARACTERS = {
    sre_constants.CATEGORY_DIGIT: "0",
    sre_constants.CATEGORY_WORD: "A",
    sre_constants.CATEGORY_SPACE: " ",
}


class _NoExample(Exception):
    """The expression uses something the example builder does not follow."""


@lru_cache(maxsize=64)
def example_study_id(pattern: str | None) -> str | None:
    """An ID that matches ``pattern`` and reads like one (``UPP-\\d{3}`` gives ``UPP-001``)."""
    if not pattern:
        return None
    try:
        example = _build(sre_parse.parse(pattern))
    except (_NoExample, re.error, RecursionError):
        return None
    example = _last_zero_to_one(example)
    return example if re.fullmatch(pattern, example) else None


def _last_zero_to_one(text: str) -> str:
    """``STO-000`` reads as a placeholder; ``STO-001`` as an ID."""
    position = text.rfind("0")
    if position < 0 or re.search(r"\d", text[position + 1 :]):
        return text
    return text[:position] + "1" + text[position + 1 :]


def _build(parsed: Any) -> str:
    return "".join(_one(op, value) for op, value in parsed)


def _one(op: Any, value: Any) -> str:
    if op is sre_constants.LITERAL:
        return chr(value)
    if op is sre_constants.IN:
        return _member(value)
    if op is sre_constants.ANY:
        return "A"
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
        low, _high, inner = value
        return _build(inner) * int(low)  # an optional part is left out of the example
    if op is sre_constants.SUBPATTERN:
        return _build(value[-1])
    if op is sre_constants.BRANCH:
        return _build(value[1][0])
    if op in (sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return ""
    raise _NoExample(op)


def _member(members: Any) -> str:
    for op, value in members:
        if op is sre_constants.NEGATE:
            raise _NoExample(op)
        if op is sre_constants.LITERAL:
            return chr(value)
        if op is sre_constants.RANGE:
            low, high = value
            return "0" if low <= ord("0") <= high else chr(low)
        if op is sre_constants.CATEGORY and value in _CATEGORY_CHARACTERS:
            return _CATEGORY_CHARACTERS[value]
    raise _NoExample(members)
