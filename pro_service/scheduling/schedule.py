"""Loading and validating the study schedule file, and the date arithmetic of time points.

Plain Python: no Flask, no database.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import yaml

LANGS = ("sv", "fi", "en")

_TEXT = {
    "type": "object",
    "properties": {lang: {"type": "string", "minLength": 1} for lang in LANGS},
    "required": list(LANGS),
    "additionalProperties": False,
}

SCHEDULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "instruments", "timepoints"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "name": _TEXT,
        "instruments": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": "^[a-z0-9-]+:[0-9A-Za-z.]+$"},
        },
        "late_entry_days": {"type": "integer", "minimum": 0, "maximum": 365},
        "timepoints": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["key", "label", "anchor", "offset", "window"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_]*$", "maxLength": 40},
                    "label": _TEXT,
                    "anchor": {"enum": ["inclusion", "surgery"]},
                    "offset": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": False,
                        "properties": {
                            "days": {"type": "integer"},
                            "months": {"type": "integer"},
                        },
                    },
                    "window": {
                        "type": "object",
                        "required": ["opens", "closes"],
                        "additionalProperties": False,
                        "properties": {
                            "opens": {"type": "integer", "maximum": 0},
                            "closes": {"type": "integer", "minimum": 0},
                        },
                    },
                    "reminders": {
                        "type": "array",
                        "items": {
                            "oneOf": [
                                {"type": "integer", "minimum": 1},
                                {
                                    "type": "object",
                                    "required": ["before_close"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "before_close": {"type": "integer", "minimum": 0}
                                    },
                                },
                            ]
                        },
                        "maxItems": 5,
                    },
                    "instruments": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": "^[a-z0-9-]+:[0-9A-Za-z.]+$"},
                    },
                    "late_entry_days": {"type": "integer", "minimum": 0, "maximum": 365},
                    "late_start": {
                        "type": "object",
                        "required": ["anchor", "days", "within"],
                        "additionalProperties": False,
                        "properties": {
                            "anchor": {"type": "string"},
                            "days": {"type": "integer"},
                            "within": {"type": "integer", "minimum": 1, "maximum": 3650},
                        },
                    },
                },
            },
        },
    },
}


class ScheduleFileError(ValueError):
    def __init__(self, path: Path, field: str, problem: str) -> None:
        self.path, self.field, self.problem = path, field, problem
        super().__init__(f"{path}: {field}: {problem}")


def add_months(day: date, months: int) -> date:
    """Add calendar months, clamping to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


@dataclass(frozen=True)
class Window:
    due: date
    opens: date
    closes: date  # inclusive


@dataclass(frozen=True)
class TimePoint:
    key: str
    label: dict[str, str]
    anchor: str
    offset_days: int
    offset_months: int
    opens_days: int
    closes_days: int
    reminder_days: tuple[int, ...]  # days after the window opens
    instruments: tuple[str, ...]
    #: Days after the window closes in which a nurse may still enter the answers of a paper form
    #: (posted back late) or a telephone interview for a missed time point; 0: until it closes.
    late_entry_days: int = 0
    #: Reminders counted back from the window's last day (0: on the last day itself).
    reminders_before_close: tuple[int, ...] = ()
    #: For a patient registered after the window closed: the time point still opens, on the day
    #: of registration, as long as that day is not after ``days`` from ``anchor`` (baseline: until
    #: the day before surgery) nor more than ``within`` days after the normal window closed.
    #: None: a window that has passed is lost.
    late_start: tuple[str, int, int] | None = None

    def late_window(
        self, anchors: dict[str, date | None], today: date, normal: Window
    ) -> Window | None:
        """The window a late-registered patient gets (opening today, as long as a normal one,
        ending at the latest on the bound), or None when it may not open late any more."""
        if self.late_start is None:
            return None
        anchor, days, within = self.late_start
        bound_anchor = anchors.get(anchor)
        bound = None if bound_anchor is None else bound_anchor + timedelta(days=days)
        if (bound is not None and today > bound) or today > normal.closes + timedelta(days=within):
            return None
        closes = today + timedelta(days=self.closes_days - self.opens_days)
        if bound is not None:
            closes = min(closes, bound)
        return Window(due=today, opens=today, closes=closes)

    def window_for(self, anchor_date: date) -> Window:
        due = add_months(anchor_date, self.offset_months) + timedelta(days=self.offset_days)
        return Window(
            due=due,
            opens=due + timedelta(days=self.opens_days),
            closes=due + timedelta(days=self.closes_days),
        )


@dataclass(frozen=True)
class Schedule:
    id: str
    name: dict[str, str]
    timepoints: tuple[TimePoint, ...]
    source_path: Path

    def timepoint(self, key: str) -> TimePoint:
        for tp in self.timepoints:
            if tp.key == key:
                return tp
        raise KeyError(key)


#: The anchor events a time point may be counted from.
ANCHORS = ("inclusion", "surgery")


def _late_start(path: Path, index: int, raw: dict[str, Any] | None) -> tuple[str, int, int] | None:
    if raw is None:
        return None
    if raw["anchor"] not in ANCHORS:
        raise ScheduleFileError(
            path,
            f"timepoints[{index}].late_start.anchor",
            f"unknown anchor {raw['anchor']!r} (known: {', '.join(ANCHORS)})",
        )
    return raw["anchor"], raw["days"], raw["within"]


def _field_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "(top level)"


def load_schedule(path: Path, instruments: Iterable[Any] | None = None) -> Schedule:
    """Load and validate a schedule file; ``instruments`` (a registry) checks the references."""
    if not path.is_file():
        raise ScheduleFileError(path, "(file)", "the schedule file does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScheduleFileError(path, "(file)", f"not valid YAML: {exc}") from exc
    validator = jsonschema.Draft202012Validator(SCHEDULE_SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise ScheduleFileError(path, _field_path(first), first.message)

    known: set[str] | None = None
    if instruments is not None:
        known = {f"{inst.id}:{inst.version}" for inst in instruments}

    def check_instruments(refs: list[str], field: str) -> tuple[str, ...]:
        if known is not None:
            for i, ref in enumerate(refs):
                if ref not in known:
                    raise ScheduleFileError(
                        path,
                        f"{field}[{i}]",
                        f"unknown instrument {ref!r} (known: {', '.join(sorted(known))})",
                    )
        return tuple(refs)

    default_instruments = check_instruments(data["instruments"], "instruments")
    seen: set[str] = set()
    timepoints = []
    for i, raw in enumerate(data["timepoints"]):
        key = raw["key"]
        if key in seen:
            raise ScheduleFileError(path, f"timepoints[{i}].key", f"duplicate time point {key!r}")
        seen.add(key)
        raw_reminders = raw.get("reminders", [])
        reminders = tuple(r for r in raw_reminders if isinstance(r, int))
        before_close = tuple(r["before_close"] for r in raw_reminders if isinstance(r, dict))
        span = raw["window"]["closes"] - raw["window"]["opens"]
        taken: dict[int, int] = {}
        for j, entry in enumerate(raw_reminders):
            field = f"timepoints[{i}].reminders[{j}]"
            if isinstance(entry, int):
                day = entry
                if day > span:
                    raise ScheduleFileError(
                        path,
                        field,
                        f"reminder on day {day} falls after the window closes (day {span})",
                    )
            else:
                day = span - entry["before_close"]
                if day < 1:
                    raise ScheduleFileError(
                        path,
                        field,
                        f"reminder {entry['before_close']} days before the window closes falls "
                        f"on or before its opening day (the window is {span} days long)",
                    )
            if day in taken:
                raise ScheduleFileError(
                    path,
                    field,
                    f"reminder falls on day {day} of the window, as reminders[{taken[day]}] does",
                )
            taken[day] = j
        if list(reminders) != sorted(reminders):
            raise ScheduleFileError(
                path, f"timepoints[{i}].reminders", "reminder days must be increasing"
            )
        timepoints.append(
            TimePoint(
                key=key,
                label=dict(raw["label"]),
                anchor=raw["anchor"],
                offset_days=raw["offset"].get("days", 0),
                offset_months=raw["offset"].get("months", 0),
                opens_days=raw["window"]["opens"],
                closes_days=raw["window"]["closes"],
                reminder_days=reminders,
                instruments=check_instruments(raw["instruments"], f"timepoints[{i}].instruments")
                if "instruments" in raw
                else default_instruments,
                late_entry_days=raw.get("late_entry_days", data.get("late_entry_days", 0)),
                reminders_before_close=before_close,
                late_start=_late_start(path, i, raw.get("late_start")),
            )
        )
    return Schedule(
        id=data["id"], name=dict(data["name"]), timepoints=tuple(timepoints), source_path=path
    )
