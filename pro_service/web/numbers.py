"""Whole numbers from requests: ids and page numbers in paths, query strings and forms.

Only ASCII digits count (``"²".isdigit()`` is true, ``int("²")`` fails; ``"٣"`` is a digit to
``int`` but not to anyone typing an id), and an id must fit the database's integer columns.
Anything else names nothing: the caller answers 404 or shows the field's error, never 500.
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter, ValidationError

from ..models import MAX_ID

_DIGITS = re.compile(r"[0-9]{1,10}")


def whole_number(raw: object, *, low: int = 1, high: int = MAX_ID) -> int | None:
    """``raw`` as an int in ``low..high``, or None when it is not such a number."""
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


class IdConverter(BaseConverter):
    """``<id:name>`` in a route: a database id (1 to :data:`MAX_ID`, ASCII digits), else 404."""

    regex = r"[0-9]{1,10}"
    weight = 50

    def to_python(self, value: str) -> int:
        number = whole_number(value)
        if number is None:
            raise ValidationError
        return number

    def to_url(self, value: object) -> str:
        return str(int(value))  # type: ignore[call-overload]
