from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from pro_service.instruments import load_instruments
from pro_service.scheduling.schedule import ScheduleFileError, add_months, load_schedule

REPO = Path(__file__).resolve().parents[2]
SCANPAN = REPO / "questionnaires" / "schedules" / "scanpan.yaml"


@pytest.fixture(scope="module")
def registry():
    return load_instruments(REPO / "questionnaires")


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2027, 11, 30), 3, date(2028, 2, 29)),
        (date(2026, 8, 31), 3, date(2026, 11, 30)),
        (date(2026, 10, 15), 3, date(2027, 1, 15)),  # across a year end
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2026, 5, 31), -1, date(2026, 4, 30)),
    ],
)
def test_months_keep_the_day_and_clamp_to_month_end(start, months, expected):
    assert add_months(start, months) == expected


def test_scanpan_default_has_the_nordic_time_points(registry):
    schedule = load_schedule(SCANPAN, registry)
    assert [tp.key for tp in schedule.timepoints] == [
        "baseline",
        "preop",
        "m3",
        "m6",
        "m9",
        "m12",
        "m18",
        "m24",
    ]
    assert schedule.timepoint("baseline").anchor == "inclusion"
    assert all(tp.anchor == "surgery" for tp in schedule.timepoints[1:])
    for tp in schedule.timepoints:
        assert tp.instruments == ("qlq-c30:3.0", "qlq-pan26:1.0")
        assert set(tp.label) == {"sv", "fi", "en"}


def test_preop_window_closes_before_the_surgery_day(registry):
    preop = load_schedule(SCANPAN, registry).timepoint("preop")
    window = preop.window_for(date(2026, 6, 1))
    assert window.due == date(2026, 5, 25)
    assert window.closes < date(2026, 6, 1)
    assert window.opens <= window.due <= window.closes


def test_three_months_after_a_surgery_on_30_november_is_due_end_of_february(registry):
    m3 = load_schedule(SCANPAN, registry).timepoint("m3")
    assert m3.window_for(date(2027, 11, 30)).due == date(2028, 2, 29)


def _write(tmp_path, mutate):
    data = yaml.safe_load(SCANPAN.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "schedule.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (
            lambda d: d["timepoints"][2].update(key="m6"),
            "timepoints[3].key",
            "duplicate time point",
        ),
        (
            lambda d: d["timepoints"][0].update(reminders=[3, 30]),
            "timepoints[0].reminders[1]",
            "after the window closes",
        ),
        (
            lambda d: d["timepoints"][0].update(reminders=[3, {"before_close": 14}]),
            "timepoints[0].reminders[1]",
            "falls on or before its opening day (the window is 14 days long)",
        ),
        (
            lambda d: d["timepoints"][0].update(reminders=[3, 11, {"before_close": 3}]),
            "timepoints[0].reminders[2]",
            "falls on day 11 of the window, as reminders[1] does",
        ),
        (
            lambda d: d["timepoints"][0].update(reminders=[{"before_close": -1}]),
            "timepoints[0].reminders[0]",
            "is not valid under any of the given schemas",
        ),
        (
            lambda d: d.update(late_entry_days=-3),
            "late_entry_days",
            "less than the minimum",
        ),
        (lambda d: d.update(instruments=["qlq-c30:9.9"]), "instruments[0]", "unknown instrument"),
        (
            lambda d: d["timepoints"][0]["window"].update(opens=3),
            "timepoints[0].window.opens",
            "greater than the maximum",
        ),
        (
            lambda d: d["timepoints"][4].pop("label"),
            "timepoints[4]",
            "'label' is a required property",
        ),
    ],
)
def test_a_bad_schedule_names_the_file_the_field_and_the_problem(
    tmp_path, registry, mutate, field, problem
):
    path = _write(tmp_path, mutate)
    with pytest.raises(ScheduleFileError) as excinfo:
        load_schedule(path, registry)
    message = str(excinfo.value)
    assert str(path) in message
    assert f": {field}: " in message
    assert problem in message


def test_scanpan_has_a_last_chance_reminder_and_a_grace_for_late_paper_forms(registry):
    schedule = load_schedule(SCANPAN, registry)
    for tp in schedule.timepoints:
        assert tp.reminders_before_close == (3,), tp.key
        assert tp.late_entry_days == 28, tp.key
