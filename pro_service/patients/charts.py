"""Score charts as SVG: one scale of one patient against days from surgery (or inclusion).

Pure: points and already-translated texts in, SVG bytes out; no Flask, no database.

matplotlib is used through :class:`matplotlib.figure.Figure` only, never ``pyplot``: pyplot keeps
global state (the "current figure") that threads of a web worker would share. matplotlib makes no
promise of thread safety even for separate figures (font and text-layout caches are shared), so
rendering is serialised per process by a lock; a chart takes a few tens of milliseconds.
matplotlib is imported on first use, so start-up and pages without charts do not pay for it.

Meaning never rests on colour alone: scores are circles on a solid line, scores that worsened by
the threshold are large crosses, the baseline is a dashed line and the reference day (surgery or
inclusion) a dotted vertical line, all named in the legend. ``rcParams`` are never changed (they
are process-wide), and text is drawn as paths, so the image needs no fonts on the reader's side.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

_LOCK = threading.Lock()

#: The ids of the SVG groups holding the markers (tests count the points through them).
SCORES_GID = "scores"
WORSENED_GID = "worsened"


class Point(Protocol):
    @property
    def day(self) -> int: ...

    @property
    def value(self) -> float: ...

    @property
    def worsened(self) -> bool: ...


@dataclass(frozen=True)
class ChartTexts:
    """Every word on the chart, in the reader's language."""

    title: str
    x_label: str
    y_label: str
    scores: str  # legend: the scores
    worsened: str  # legend: the marked scores
    baseline: str  # legend: the baseline line
    reference: str  # legend: the day-0 line ("Surgery" / "Inclusion")
    note: str | None = None  # shown under the title, e.g. "no surgery date: days from inclusion"


def render_svg(points: Sequence[Point], *, baseline: float | None, texts: ChartTexts) -> bytes:
    """The chart as a standalone SVG document (UTF-8 bytes)."""
    with _LOCK:
        return _render(points, baseline=baseline, texts=texts)


def _render(points: Sequence[Point], *, baseline: float | None, texts: ChartTexts) -> bytes:
    from matplotlib.figure import Figure

    ordered = sorted(points, key=lambda p: p.day)
    days = [p.day for p in ordered]
    values = [p.value for p in ordered]

    figure = Figure(figsize=(7.0, 4.0), dpi=96, layout="constrained")
    axes = figure.add_subplot()
    axes.set_ylim(-4, 104)
    axes.set_yticks([0, 20, 40, 60, 80, 100])
    axes.grid(axis="y", color="#d0d4d8", linewidth=0.6)
    axes.set_axisbelow(True)
    span = (min([0, *days]), max([0, *days]))
    pad = max(7, (span[1] - span[0]) * 0.05)
    axes.set_xlim(span[0] - pad, span[1] + pad)

    axes.axvline(0, color="#4a4f55", linestyle=":", linewidth=1.4, label=texts.reference)
    if baseline is not None:
        axes.axhline(baseline, color="#4a4f55", linestyle="--", linewidth=1.1, label=texts.baseline)
    (line,) = axes.plot(
        days,
        values,
        color="#0b4f8a",
        linestyle="-",
        linewidth=1.6,
        marker="o",
        markersize=6,
        markerfacecolor="#ffffff",
        markeredgewidth=1.6,
        label=texts.scores,
    )
    line.set_gid(SCORES_GID)
    worse = [p for p in ordered if p.worsened]
    if worse:
        (marks,) = axes.plot(
            [p.day for p in worse],
            [p.value for p in worse],
            linestyle="none",
            marker="X",
            markersize=12,
            color="#a4161a",
            markeredgecolor="#1a1a1a",
            markeredgewidth=0.8,
            label=texts.worsened,
        )
        marks.set_gid(WORSENED_GID)

    axes.set_xlabel(texts.x_label)
    axes.set_ylabel(texts.y_label)
    title = texts.title if texts.note is None else f"{texts.title}\n{texts.note}"
    axes.set_title(title, loc="left", fontsize=11)
    # Below the plot, so every chart's plot area has the same width whatever the legend says.
    figure.legend(loc="outside lower center", ncols=2, fontsize=9, frameon=False)

    out = io.BytesIO()
    # No creation date in the file: the same data gives the same picture.
    figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
