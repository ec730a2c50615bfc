"""EORTC scoring: QLQ-C30 3.0 and QLQ-PAN26 as in the EORTC Scoring Manual, 3rd edition (2001).

The rules (docs: /work/shared/reference/eortc-scoring.md, sections 0 and 2):

* raw score ``RS`` = mean of the *answered* items of the scale;
* half rule: a scale is scored only if ``answered * 2 >= n_items`` (so a single-item scale is
  missing when its item is), which equals imputing missing items with the mean of the answered;
* functional transform ``(1 - (RS - 1) / range) * 100``, symptom transform (symptom and global
  scales) ``((RS - 1) / range) * 100``, with ``range`` = max - min of the items' codes; the
  "1" is the lowest code (the loader guarantees that all items of a scale share their codes'
  lowest and highest values);
* a summary score is the mean of its component scales, the ``reversed`` ones taken as
  ``100 - score``, and is missing unless every component exists.

Arithmetic is exact: every score is a ratio of integers, turned into a float by a single
``int / int`` division, which Python rounds correctly. So each value is the float nearest to the
exact score (``16.666666666666668`` for 50/3, where evaluating the manual's formula step by step
in floating point gives ``16.666666666666664``), independent of the order of operations; the
CSV scorer and :func:`score_instrument` therefore agree to the last bit. Values are unrounded;
round only for display. Invalid answers raise :class:`InvalidAnswerError`: they are never
clipped or treated as missing.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .model import Instrument

#: Recorded with every stored score so that results can be reproduced after files change.
ALGORITHM_VERSION = "eortc-manual-3rd-ed/1"


@dataclass(frozen=True)
class ScaleScore:
    """One scale (or summary) score.

    For a summary score, ``items_in_scale`` and ``items_answered`` count component *scales*
    (all of them, and those that have a score).
    """

    code: str
    value: float | None
    items_in_scale: int
    items_answered: int
    missing_reason: str | None = None


class InvalidAnswerError(ValueError):
    """An answer that is not one of the item's response codes (out of range, 0, 2.5, "2", True)."""

    def __init__(self, item: int, value: object, allowed: Sequence[int] = ()) -> None:
        self.item = item
        self.value = value
        self.allowed = tuple(allowed)
        detail = f" (allowed {describe_codes(self.allowed)})" if self.allowed else ""
        super().__init__(f"item {item}: {value!r} is not a valid answer{detail}")


def describe_codes(codes: Sequence[int]) -> str:
    """``"1-4"`` for consecutive codes, ``"1, 2, 5"`` otherwise."""
    ordered = sorted(codes)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(str(c) for c in ordered)


# --------------------------------------------------------------------------------------------
# Compiled form: everything about a scale that scoring needs, worked out once per instrument.


Ratio = tuple[int, int]  # (numerator, denominator): the score is 100 * numerator / denominator


@dataclass(frozen=True)
class CompiledScale:
    code: str
    items: tuple[int, ...]
    n_items: int
    low: int  # lowest response code of the scale's items (1 for every EORTC item)
    span: int  # the manual's "range": highest - lowest code
    functional: bool

    def ratio(self, answered: Sequence[int]) -> Ratio | None:
        """The exact score from the codes of the *answered* items; None if the half rule fails.

        With ``count`` answered items summing to ``total``, ``RS - low = excess / count`` where
        ``excess = total - low * count``, so the symptom transform ``(RS - low) / span * 100``
        is ``100 * excess / (count * span)`` and the functional one is
        ``100 * (count * span - excess) / (count * span)``.
        """
        return self.ratio_of(len(answered), sum(answered))

    def ratio_of(self, count: int, total: int) -> Ratio | None:
        """:meth:`ratio` from the number of answered items and the sum of their codes, which
        is all it depends on."""
        if count * 2 < self.n_items or count == 0:
            return None
        excess = total - self.low * count
        denominator = count * self.span
        return (denominator - excess if self.functional else excess), denominator

    def value(self, answered: Sequence[int]) -> float | None:
        """The score as the float nearest to its exact value (int / int rounds correctly)."""
        ratio = self.ratio(answered)
        return None if ratio is None else 100 * ratio[0] / ratio[1]

    def denominators(self) -> tuple[int, ...]:
        """Every denominator :meth:`ratio` can return."""
        return tuple(c * self.span for c in range(1, self.n_items + 1) if c * 2 >= self.n_items)

    def missing_reason(self, count: int) -> str:
        if self.n_items == 1:
            return f"item {self.items[0]} not answered"
        needed = (self.n_items + 1) // 2
        return f"{count} of {self.n_items} items answered; the half rule needs at least {needed}"


@dataclass(frozen=True)
class CompiledSummary:
    """A summary score, summed exactly: each component's contribution (``100 - score`` for
    the reversed ones) is ``100 * part / denominator`` with an integer ``part`` over one common
    ``denominator``, so the mean is one correctly rounded division, whatever the order of the
    additions."""

    code: str
    components: tuple[str, ...]
    positions: tuple[int, ...]  # index of each component in CompiledInstrument.scales
    reversed_flags: tuple[bool, ...]  # parallel to components
    denominator: int

    def part(self, index: int, ratio: Ratio) -> int:
        numerator, denominator = ratio
        if self.reversed_flags[index]:
            numerator = denominator - numerator
        return numerator * (self.denominator // denominator)

    def value(self, total_part: int) -> float:
        return 100 * total_part / (self.denominator * len(self.components))


@dataclass(frozen=True)
class CompiledInstrument:
    instrument: Instrument
    scales: tuple[CompiledScale, ...]
    summaries: tuple[CompiledSummary, ...]
    allowed: Mapping[int, frozenset[int]]  # item number -> valid codes
    codes: Mapping[int, tuple[int, ...]]  # item number -> codes in order (for messages)

    def check(self, item: int, value: object) -> int | None:
        """``value`` as a code, None for not answered; raises InvalidAnswerError otherwise."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value in self.allowed[item]:
            return int(value)
        raise InvalidAnswerError(item, value, self.codes[item])


def _compile(instrument: Instrument) -> CompiledInstrument:
    scales = []
    for scale in instrument.scales:
        first = instrument.items[scale.items[0]]
        scales.append(
            CompiledScale(
                code=scale.code,
                items=scale.items,
                n_items=len(scale.items),
                low=first.min_code,
                span=first.code_range,
                functional=scale.transform == "functional",
            )
        )
    order = [scale.code for scale in scales]
    summaries = tuple(
        CompiledSummary(
            code=s.code,
            components=s.components,
            positions=tuple(order.index(c) for c in s.components),
            reversed_flags=tuple(c in s.reversed for c in s.components),
            denominator=math.lcm(
                *(d for c in s.components for d in scales[order.index(c)].denominators())
            ),
        )
        for s in instrument.summary_scores
    )
    return CompiledInstrument(
        instrument=instrument,
        scales=tuple(scales),
        summaries=summaries,
        allowed={n: frozenset(item.codes) for n, item in instrument.items.items()},
        codes={n: item.codes for n, item in instrument.items.items()},
    )


_compiled_cache: weakref.WeakKeyDictionary[Instrument, CompiledInstrument] = (
    weakref.WeakKeyDictionary()
)


def compile_instrument(instrument: Instrument) -> CompiledInstrument:
    """The compiled scorer of ``instrument``, built once and cached while the instrument lives."""
    try:
        return _compiled_cache[instrument]
    except KeyError:
        compiled = _compile(instrument)
        _compiled_cache[instrument] = compiled
        return compiled


# --------------------------------------------------------------------------------------------
# Public API


def validate_answers(instrument: Instrument, answers: Mapping[int, object]) -> None:
    """Raise InvalidAnswerError for the first invalid answer to an item of ``instrument``.

    None means not answered. Keys that are not items of ``instrument`` are ignored.
    """
    compiled = compile_instrument(instrument)
    for number in instrument.items:
        if number in answers:
            compiled.check(number, answers[number])


def score_instrument(
    instrument: Instrument, answers: Mapping[int, int | None]
) -> dict[str, ScaleScore]:
    """Score every scale of ``instrument`` (file order), then its summary scores.

    ``answers`` maps item numbers to codes; a missing key or None is "not answered". Items of
    other instruments are ignored. Raises InvalidAnswerError on any invalid answer.
    """
    compiled = compile_instrument(instrument)
    codes: dict[int, int] = {}
    for number in instrument.items:
        answer = answers.get(number)
        if answer is not None:
            checked = compiled.check(number, answer)
            if checked is not None:
                codes[number] = checked

    result: dict[str, ScaleScore] = {}
    ratios: list[Ratio | None] = []
    for scale in compiled.scales:
        answered = [codes[i] for i in scale.items if i in codes]
        ratio = scale.ratio(answered)
        ratios.append(ratio)
        result[scale.code] = ScaleScore(
            code=scale.code,
            value=None if ratio is None else 100 * ratio[0] / ratio[1],
            items_in_scale=scale.n_items,
            items_answered=len(answered),
            missing_reason=None if ratio is not None else scale.missing_reason(len(answered)),
        )
    for summary in compiled.summaries:
        total = 0
        missing: list[str] = []
        for index, position in enumerate(summary.positions):
            component = ratios[position]
            if component is None:
                missing.append(summary.components[index])
            else:
                total += summary.part(index, component)
        result[summary.code] = ScaleScore(
            code=summary.code,
            value=None if missing else summary.value(total),
            items_in_scale=len(summary.components),
            items_answered=len(summary.components) - len(missing),
            missing_reason=f"missing components: {', '.join(missing)}" if missing else None,
        )
    return result


def score_answers(
    instruments: Iterable[Instrument], answers: Mapping[int, int | None]
) -> dict[str, ScaleScore]:
    """Score several instruments from one answer mapping; the results merged in order."""
    merged: dict[str, ScaleScore] = {}
    for instrument in instruments:
        for code, score in score_instrument(instrument, answers).items():
            if code in merged:
                raise ValueError(f"score {code!r} is produced by more than one instrument")
            merged[code] = score
    return merged
