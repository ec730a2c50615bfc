"""What the SPSS and Stata writers need to know of one column of the wide table.

The writers (:mod:`.spss`, :mod:`.stata`) write their file front to back in one pass, so
everything their headers hold is known before the first row: the number of rows and, for text,
the widest value in UTF-8 bytes. :mod:`.statistics` finds both by spooling the rows to disk
first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

ColumnKind = Literal["string", "integer", "number", "datetime"]
#: One cell as the writers take it: text, a number, an aware UTC datetime, or missing.
StatCell = str | int | float | datetime | None


@dataclass(frozen=True)
class Column:
    name: str  # the variable name, e.g. "days_from_surgery", "q31"
    label: str  # the full variable label; each writer fits it to its format's limit
    kind: ColumnKind
    width: int = 1  # strings only: the widest value in UTF-8 bytes (at least 1)
    value_labels: dict[int, str] = field(default_factory=dict)  # integer code -> meaning

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"column {self.name}: width must be at least 1, not {self.width}")
        if self.value_labels and self.kind != "integer":
            raise ValueError(f"column {self.name}: value labels need an integer column")


def is_missing(cell: StatCell) -> bool:
    """A missing cell: None, or a float NaN."""
    return cell is None or (isinstance(cell, float) and math.isnan(cell))


def fit_label(text: str, limit: int, *, encoded: bool = False) -> str:
    """``text`` cut to ``limit`` characters (or UTF-8 bytes), ending in "…" when cut."""
    if encoded:
        if len(text.encode("utf-8")) <= limit:
            return text
        while len((text + "…").encode("utf-8")) > limit:
            text = text[:-1]
        return text + "…"
    return text if len(text) <= limit else text[: limit - 1] + "…"
