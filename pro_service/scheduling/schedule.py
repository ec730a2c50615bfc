"""Loading and validating the study schedule file, and the date arithmetic of time points.

Plain Python: no Flask, no database.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
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

_INSTRUMENT_REF = {"type": "string", "pattern": "^[a-z0-9-]+:[0-9A-Za-z.]+$"}
_ANCHOR_KEY = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 20}

_TIMEPOINT: dict[str, Any] = {
    "type": "object",
    "required": ["key", "label", "anchor", "offset", "window"],
    "additionalProperties": False,
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_]*$", "maxLength": 40},
        "label": _TEXT,
        "anchor": _ANCHOR_KEY,
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
                        "properties": {"before_close": {"type": "integer", "minimum": 0}},
                    },
                ]
            },
            "maxItems": 5,
        },
        "instruments": {"type": "array", "minItems": 1, "items": _INSTRUMENT_REF},
        "late_entry_days": {"type": "integer", "minimum": 0, "maximum": 365},
        "bound": {
            "type": "object",
            "required": ["anchor", "days"],
            "additionalProperties": False,
            "properties": {"anchor": {"type": "string"}, "days": {"type": "integer"}},
        },
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
}

#: A follow-up track's time point: counted from the track's anchor (``anchor`` may be left out).
_TRACK_TIMEPOINT: dict[str, Any] = {
    **_TIMEPOINT,
    "required": ["key", "label", "offset", "window"],
}

#: Patient statuses a schedule may give a follow-up track of its own (the patient keeps getting
#: questionnaires under that status).
TRACK_STATUSES = ("not_operated",)

SCHEDULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "instruments", "timepoints"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "name": _TEXT,
        "instruments": {"type": "array", "minItems": 1, "items": _INSTRUMENT_REF},
        "late_entry_days": {"type": "integer", "minimum": 0, "maximum": 365},
        "anchors": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _ANCHOR_KEY,
            "additionalProperties": {
                "type": "object",
                "required": ["label"],
                "additionalProperties": False,
                "properties": {
                    "label": _TEXT,
                    "not_before": {"type": "string"},
                    "within_days": {"type": "integer", "minimum": 1, "maximum": 3650},
                    "past_only": {"type": "boolean"},
                },
            },
        },
        "timepoints": {"type": "array", "minItems": 1, "items": _TIMEPOINT},
        "follow_up": {
            "type": "object",
            "propertyNames": {"enum": list(TRACK_STATUSES)},
            "additionalProperties": {
                "type": "object",
                "required": ["anchor", "timepoints"],
                "additionalProperties": False,
                "properties": {
                    "anchor": {"type": "string"},
                    "timepoints": {"type": "array", "minItems": 1, "items": _TRACK_TIMEPOINT},
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
    #: The patient status whose follow-up track this time point belongs to (None: the main
    #: course, for active patients).
    track: str | None = None
    #: (anchor, days): answers are accepted at the latest ``days`` from that anchor's date
    #: (baseline: until the day before surgery); a window reaching past it is cut there, one
    #: that would open after it is not expected. None: the window alone decides.
    bound: tuple[str, int] | None = None

    def bound_date(self, anchors: dict[str, date | None]) -> date | None:
        if self.bound is None:
            return None
        day = anchors.get(self.bound[0])
        return None if day is None else day + timedelta(days=self.bound[1])

    def bounded(self, window: Window, anchors: dict[str, date | None]) -> Window | None:
        """``window`` cut at the bound (unchanged while the bound's anchor date is not known);
        None when the bound falls before the window opens (the time point is not expected)."""
        bound = self.bound_date(anchors)
        if bound is None or bound >= window.closes:
            return window
        if bound < window.opens:
            return None
        return Window(due=min(window.due, bound), opens=window.opens, closes=bound)

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
class Anchor:
    """An event time points are counted from. ``inclusion`` and ``surgery`` are kept with the
    patient's registration; any other anchor a schedule declares (a decision not to operate, the
    start of chemotherapy) is recorded by a nurse on the patient page."""

    key: str
    label: dict[str, str]
    #: The date may not come before this anchor's date (surgery: not before inclusion) ...
    not_before: str | None = None
    #: ... nor more than this many days after it.
    within_days: int | None = None
    #: The date may not be in the future (a decision taken, a death); a surgery may be planned.
    past_only: bool = False

    @property
    def recorded(self) -> bool:
        """Recorded on the patient page (not the registration's inclusion or surgery date)."""
        return self.key not in BUILT_IN_ANCHORS


@dataclass(frozen=True)
class Track:
    """What follows a patient status: the time points a patient with that status gets, counted
    from the date the status records (ScanPan: "not operated" -> 3, 6 and 12 months after the
    decision not to operate)."""

    status: str
    anchor: str
    timepoints: tuple[str, ...]


@dataclass(frozen=True)
class Schedule:
    id: str
    name: dict[str, str]
    #: Every time point: the main course first, then each follow-up track's.
    timepoints: tuple[TimePoint, ...]
    source_path: Path
    anchors: dict[str, Anchor] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)

    def timepoint(self, key: str) -> TimePoint:
        for tp in self.timepoints:
            if tp.key == key:
                return tp
        raise KeyError(key)

    def timepoints_for(self, status: str) -> tuple[TimePoint, ...]:
        """The time points a patient with ``status`` gets created: the main course for an active
        patient, a follow-up track for the status it belongs to, none otherwise."""
        track = None if status == "active" else status
        if track is not None and track not in self.tracks:
            return ()
        return tuple(tp for tp in self.timepoints if tp.track == track)

    @property
    def main_timepoints(self) -> tuple[TimePoint, ...]:
        return tuple(tp for tp in self.timepoints if tp.track is None)

    def track_anchor(self, status: str) -> Anchor | None:
        """The anchor whose date a status records (the decision not to operate), if the
        schedule gives that status a follow-up track."""
        track = self.tracks.get(status)
        return None if track is None else self.anchors[track.anchor]


#: Anchors kept with the patient's registration (``Patient.inclusion_date``, ``surgery_date``).
BUILT_IN_ANCHORS = ("inclusion", "surgery")

#: The anchors of a schedule file without an ``anchors`` section.
DEFAULT_ANCHORS: dict[str, dict[str, Any]] = {
    "inclusion": {"label": {"sv": "Inklusion", "fi": "Mukaanotto", "en": "Inclusion"}},
    "surgery": {
        "label": {"sv": "Operation", "fi": "Leikkaus", "en": "Surgery"},
        "not_before": "inclusion",
        "within_days": 3 * 365,
    },
}


def _field_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "(top level)"


def _anchors(path: Path, raw: dict[str, Any]) -> dict[str, Anchor]:
    if "inclusion" not in raw:
        raise ScheduleFileError(
            path,
            "anchors",
            "the anchor 'inclusion' is required (every patient has an inclusion date)",
        )
    anchors = {}
    for key, spec in raw.items():
        field_name = f"anchors.{key}"
        not_before = spec.get("not_before")
        if key == "inclusion" and set(spec) - {"label"}:
            raise ScheduleFileError(
                path, field_name, "the inclusion date is the registration's; it takes no rules"
            )
        if not_before is not None and (not_before not in raw or not_before == key):
            raise ScheduleFileError(
                path,
                f"{field_name}.not_before",
                f"unknown anchor {not_before!r} (known: {', '.join(k for k in raw if k != key)})",
            )
        if "within_days" in spec and not_before is None:
            raise ScheduleFileError(
                path, f"{field_name}.within_days", "within_days needs not_before (days after what)"
            )
        anchors[key] = Anchor(
            key=key,
            label=dict(spec["label"]),
            not_before=not_before,
            within_days=spec.get("within_days"),
            past_only=spec.get("past_only", False),
        )
    for key, declared in anchors.items():  # not_before must not go round in a circle
        seen = [key]
        step = declared.not_before
        while step is not None:
            if step in seen:
                raise ScheduleFileError(
                    path,
                    f"anchors.{key}.not_before",
                    f"goes round in a circle ({' -> '.join([*seen, step])})",
                )
            seen.append(step)
            step = anchors[step].not_before
    return anchors


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

    def check_instruments(refs: list[str], field_name: str) -> tuple[str, ...]:
        if known is not None:
            for i, ref in enumerate(refs):
                if ref not in known:
                    raise ScheduleFileError(
                        path,
                        f"{field_name}[{i}]",
                        f"unknown instrument {ref!r} (known: {', '.join(sorted(known))})",
                    )
        return tuple(refs)

    anchors = _anchors(path, data.get("anchors", DEFAULT_ANCHORS))
    track_anchors: dict[str, str] = {}
    for status, raw_track in data.get("follow_up", {}).items():
        anchor = raw_track["anchor"]
        field_name = f"follow_up.{status}.anchor"
        if anchor not in anchors:
            raise ScheduleFileError(
                path, field_name, f"unknown anchor {anchor!r} (known: {', '.join(anchors)})"
            )
        if not anchors[anchor].recorded:
            raise ScheduleFileError(
                path,
                field_name,
                f"a follow-up track is counted from the date its status records, not from "
                f"{anchor!r}: declare an anchor of its own under anchors",
            )
        if anchor in track_anchors.values():
            raise ScheduleFileError(path, field_name, f"{anchor!r} is another track's anchor")
        track_anchors[status] = anchor

    default_instruments = check_instruments(data["instruments"], "instruments")
    context = _Context(path, anchors, track_anchors, default_instruments, check_instruments, data)
    timepoints = [
        context.timepoint(f"timepoints[{i}]", raw, track=None)
        for i, raw in enumerate(data["timepoints"])
    ]
    tracks = {}
    for status, raw_track in data.get("follow_up", {}).items():
        track_points = [
            context.timepoint(f"follow_up.{status}.timepoints[{i}]", raw, track=status)
            for i, raw in enumerate(raw_track["timepoints"])
        ]
        timepoints.extend(track_points)
        tracks[status] = Track(status, raw_track["anchor"], tuple(tp.key for tp in track_points))
    return Schedule(
        id=data["id"],
        name=dict(data["name"]),
        timepoints=tuple(timepoints),
        source_path=path,
        anchors=anchors,
        tracks=tracks,
    )


@dataclass
class _Context:
    """What checking one time point needs to know of the whole file."""

    path: Path
    anchors: dict[str, Anchor]
    track_anchors: dict[str, str]  # status -> its track's anchor
    default_instruments: tuple[str, ...]
    check_instruments: Any
    data: dict[str, Any]
    seen: set[str] = field(default_factory=set)

    def error(self, field_name: str, problem: str) -> ScheduleFileError:
        return ScheduleFileError(self.path, field_name, problem)

    def timepoint(self, where: str, raw: dict[str, Any], *, track: str | None) -> TimePoint:
        key = raw["key"]
        if key in self.seen:
            raise self.error(f"{where}.key", f"duplicate time point {key!r}")
        self.seen.add(key)
        anchor = self._anchor(where, raw, track)
        raw_reminders = raw.get("reminders", [])
        reminders = tuple(r for r in raw_reminders if isinstance(r, int))
        before_close = tuple(r["before_close"] for r in raw_reminders if isinstance(r, dict))
        self._check_reminders(where, raw, raw_reminders)
        if list(reminders) != sorted(reminders):
            raise self.error(f"{where}.reminders", "reminder days must be increasing")
        offset_days = raw["offset"].get("days", 0)
        offset_months = raw["offset"].get("months", 0)
        late_start = self._late_start(where, raw, anchor, offset_days, offset_months)
        bound = self._bound(where, raw, anchor, offset_days, offset_months)
        return TimePoint(
            key=key,
            label=dict(raw["label"]),
            anchor=anchor,
            offset_days=offset_days,
            offset_months=offset_months,
            opens_days=raw["window"]["opens"],
            closes_days=raw["window"]["closes"],
            reminder_days=reminders,
            instruments=self.check_instruments(raw["instruments"], f"{where}.instruments")
            if "instruments" in raw
            else self.default_instruments,
            late_entry_days=raw.get("late_entry_days", self.data.get("late_entry_days", 0)),
            reminders_before_close=before_close,
            late_start=late_start,
            track=track,
            bound=bound,
        )

    def _anchor(self, where: str, raw: dict[str, Any], track: str | None) -> str:
        if track is not None:
            anchor = str(raw.get("anchor", self.track_anchors[track]))
            if anchor != self.track_anchors[track]:
                raise self.error(
                    f"{where}.anchor",
                    f"a follow-up track's time points are counted from its anchor "
                    f"{self.track_anchors[track]!r}, not {anchor!r}",
                )
            return anchor
        anchor = str(raw["anchor"])
        if anchor not in self.anchors:
            raise self.error(
                f"{where}.anchor",
                f"unknown anchor {anchor!r} (known: {', '.join(self.anchors)})",
            )
        for status, track_anchor in self.track_anchors.items():
            if anchor == track_anchor:
                raise self.error(
                    f"{where}.anchor",
                    f"{anchor!r} is the anchor of the follow-up track {status!r}: its time "
                    f"points belong in follow_up.{status}.timepoints",
                )
        return anchor

    def _check_reminders(self, where: str, raw: dict[str, Any], entries: list[Any]) -> None:
        span = raw["window"]["closes"] - raw["window"]["opens"]
        taken: dict[int, int] = {}
        for j, entry in enumerate(entries):
            field_name = f"{where}.reminders[{j}]"
            if isinstance(entry, int):
                day = entry
                if day > span:
                    raise self.error(
                        field_name,
                        f"reminder on day {day} falls after the window closes (day {span})",
                    )
            else:
                day = span - entry["before_close"]
                if day < 1:
                    raise self.error(
                        field_name,
                        f"reminder {entry['before_close']} days before the window closes falls "
                        f"on or before its opening day (the window is {span} days long)",
                    )
            if day in taken:
                raise self.error(
                    field_name,
                    f"reminder falls on day {day} of the window, as reminders[{taken[day]}] does",
                )
            taken[day] = j

    def _bound(
        self,
        where: str,
        raw: dict[str, Any],
        anchor: str,
        offset_days: int,
        offset_months: int,
    ) -> tuple[str, int] | None:
        spec = self._checked_bound(where, raw, "bound", anchor, offset_days, offset_months)
        return None if spec is None else (spec["anchor"], spec["days"])

    def _late_start(
        self,
        where: str,
        raw: dict[str, Any],
        anchor: str,
        offset_days: int,
        offset_months: int,
    ) -> tuple[str, int, int] | None:
        spec = self._checked_bound(where, raw, "late_start", anchor, offset_days, offset_months)
        return None if spec is None else (spec["anchor"], spec["days"], spec["within"])

    def _checked_bound(  # noqa: PLR0913, PLR0917
        self,
        where: str,
        raw: dict[str, Any],
        name: str,
        anchor: str,
        offset_days: int,
        offset_months: int,
    ) -> dict[str, Any] | None:
        """``raw[name]``, ``{anchor, days, ...}``: a day counted from a known anchor that, from
        the time point's own anchor, may not fall before its window opens."""
        spec: dict[str, Any] | None = raw.get(name)
        if spec is None:
            return None
        if spec["anchor"] not in self.anchors:
            raise self.error(
                f"{where}.{name}.anchor",
                f"unknown anchor {spec['anchor']!r} (known: {', '.join(self.anchors)})",
            )
        opening = offset_days + raw["window"]["opens"]
        if spec["anchor"] == anchor and offset_months == 0 and spec["days"] < opening:
            raise self.error(
                f"{where}.{name}.days",
                f"the bound (day {spec['days']} from {anchor}) falls before the window opens "
                f"(day {opening})",
            )
        return spec
