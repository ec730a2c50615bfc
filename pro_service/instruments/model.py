"""Immutable in-memory form of an instrument data file (see docs/instrument-format.md).

Everything here is built by :mod:`pro_service.instruments.loader` after validation, so the
objects can trust their own consistency: every item has a response set with at least two integer
codes, every scale item exists, and so on. Per-language text is a read-only mapping
``{language: text}`` holding exactly the instrument's languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: Per-language text, e.g. ``{"sv": "...", "fi": "...", "en": "..."}``.
Text = Mapping[str, str]

ScaleType = Literal["functional", "symptom", "global"]
Transform = Literal["functional", "symptom"]

SCALE_TYPES: tuple[str, ...] = ("functional", "symptom", "global")
TRANSFORMS: tuple[str, ...] = ("functional", "symptom")


@dataclass(frozen=True)
class ResponseCode:
    """One answer option: ``code`` is what is stored and scored, ``label`` what the patient sees."""

    code: int
    label: Text


@dataclass(frozen=True)
class ResponseSet:
    name: str
    codes: tuple[ResponseCode, ...]  # ascending by code

    def label(self, code: int, lang: str) -> str:
        for option in self.codes:
            if option.code == code:
                return option.label[lang]
        raise KeyError(f"response set {self.name!r} has no code {code!r}")


@dataclass(frozen=True)
class Item:
    number: int
    response_set: str
    codes: tuple[int, ...]  # ascending, at least two
    labels: Mapping[int, Text]  # code -> per-language label
    recall: str  # key into Instrument.recall_periods
    recall_text: Text
    text: Text

    @property
    def min_code(self) -> int:
        return self.codes[0]

    @property
    def max_code(self) -> int:
        return self.codes[-1]

    @property
    def code_range(self) -> int:
        """``max - min`` of the codes: the manual's "range" (3 for 1-4 items, 6 for 1-7)."""
        return self.codes[-1] - self.codes[0]


@dataclass(frozen=True)
class Screen:
    index: int
    items: tuple[int, ...]
    heading: Text | None = None


@dataclass(frozen=True)
class Scale:
    code: str
    name: Text
    type: ScaleType
    transform: Transform
    items: tuple[int, ...]
    direction_verified: bool


@dataclass(frozen=True)
class SummaryScore:
    code: str
    name: Text
    components: tuple[str, ...]
    reversed: tuple[str, ...]  # components used as 100 - score


@dataclass(frozen=True)
class Instrument:
    id: str
    version: str
    name: Text
    languages: tuple[str, ...]
    text_source: str
    paraphrase_notice: Text
    first_item: int
    response_sets: Mapping[str, ResponseSet]
    recall_periods: Mapping[str, Text]
    items: Mapping[int, Item]  # in item order
    screens: tuple[Screen, ...]
    scales: tuple[Scale, ...]
    summary_scores: tuple[SummaryScore, ...] = ()
    source_path: Path | None = None
    #: language -> ``source`` line of the licensed-text override applied to that language.
    licensed_text: Mapping[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        # Consistent with the generated __eq__ (equal instruments share id, version and path);
        # the mappings inside are read-only but not hashable.
        return hash((self.id, self.version, self.source_path))

    @property
    def key(self) -> str:
        """``"qlq-c30:3.0"``: how schedules and stored response sets name the instrument."""
        return f"{self.id}:{self.version}"

    @property
    def last_item(self) -> int:
        return self.first_item + len(self.items) - 1

    @property
    def item_numbers(self) -> tuple[int, ...]:
        return tuple(self.items)

    def item(self, number: int) -> Item:
        try:
            return self.items[number]
        except KeyError:
            raise KeyError(f"{self.key} has no item {number!r}") from None

    def item_text(self, number: int, lang: str) -> str:
        return self.item(number).text[self._lang(lang)]

    def recall_text(self, number: int, lang: str) -> str:
        return self.item(number).recall_text[self._lang(lang)]

    def label(self, number: int, code: int, lang: str) -> str:
        """The answer label the patient sees for ``code`` of item ``number``."""
        item = self.item(number)
        try:
            return item.labels[code][self._lang(lang)]
        except KeyError:
            if code not in item.labels:
                raise KeyError(f"{self.key} item {number} has no code {code!r}") from None
            raise

    def scale(self, code: str) -> Scale:
        for scale in self.scales:
            if scale.code == code:
                return scale
        raise KeyError(f"{self.key} has no scale {code!r}")

    @property
    def score_codes(self) -> tuple[str, ...]:
        """Output names in output order: the scales in file order, then the summary scores."""
        return tuple(s.code for s in self.scales) + tuple(s.code for s in self.summary_scores)

    def is_licensed(self, lang: str) -> bool:
        """True when a licensed-text override was applied for ``lang``."""
        return lang in self.licensed_text

    def _lang(self, lang: str) -> str:
        if lang not in self.languages:
            raise KeyError(f"{self.key} has no language {lang!r} (has {', '.join(self.languages)})")
        return lang
