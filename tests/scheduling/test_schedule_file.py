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
    assert [tp.key for tp in schedule.timepoints_for("active")] == [
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
    assert all(tp.anchor == "surgery" for tp in schedule.main_timepoints[1:])


def test_scanpan_declares_its_anchors_and_a_follow_up_for_patients_not_operated(registry):
    """Anchors are data: inclusion, surgery and the decision not to operate; a patient not
    operated gets 3, 6 and 12 months after the decision; withdrawn and deceased get nothing."""
    schedule = load_schedule(SCANPAN, registry)
    assert list(schedule.anchors) == ["inclusion", "surgery", "no_surgery_decision"]
    surgery, decision = schedule.anchors["surgery"], schedule.anchors["no_surgery_decision"]
    assert (surgery.not_before, surgery.within_days, surgery.past_only) == (
        "inclusion",
        1095,
        False,
    )
    assert (decision.not_before, decision.past_only, decision.recorded) == ("inclusion", True, True)
    follow_up = schedule.timepoints_for("not_operated")
    assert [tp.key for tp in follow_up] == ["nonop_m3", "nonop_m6", "nonop_m12"]
    assert {tp.anchor for tp in follow_up} == {"no_surgery_decision"}
    assert [tp.offset_months for tp in follow_up] == [3, 6, 12]
    assert schedule.track_anchor("not_operated") == decision
    assert schedule.timepoints_for("withdrawn") == schedule.timepoints_for("deceased") == ()
    assert "an assumption for the study team to confirm" in SCANPAN.read_text(encoding="utf-8")
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
        (
            lambda d: d["timepoints"][2].update(anchor="chemo_start"),
            "timepoints[2].anchor",
            "unknown anchor 'chemo_start' (known: inclusion, no_surgery_decision, surgery)",
        ),
        (
            lambda d: d["timepoints"][0]["late_start"].update(anchor="radiotherapy"),
            "timepoints[0].late_start.anchor",
            "unknown anchor 'radiotherapy'",
        ),
        (
            lambda d: d["timepoints"][0]["late_start"].update(anchor="inclusion", days=-3),
            "timepoints[0].late_start.days",
            "the bound (day -3 from inclusion) falls before the window opens (day 0)",
        ),
        (
            lambda d: d["timepoints"][0]["bound"].update(anchor="radiotherapy"),
            "timepoints[0].bound.anchor",
            "unknown anchor 'radiotherapy'",
        ),
        (
            lambda d: d["timepoints"][1].update(bound={"anchor": "surgery", "days": -30}),
            "timepoints[1].bound.days",
            "the bound (day -30 from surgery) falls before the window opens (day -21)",
        ),
        (
            lambda d: d["follow_up"]["not_operated"].update(anchor="no_surgery"),
            "follow_up.not_operated.anchor",
            "unknown anchor 'no_surgery'",
        ),
        (
            lambda d: d["anchors"].pop("no_surgery_decision"),
            "follow_up.not_operated.anchor",
            "unknown anchor 'no_surgery_decision' (known: inclusion, surgery)",
        ),
        (
            lambda d: d["follow_up"]["not_operated"].update(anchor="surgery"),
            "follow_up.not_operated.anchor",
            "a follow-up track is counted from the date its status records",
        ),
        (
            lambda d: d["follow_up"]["not_operated"]["timepoints"][1].update(reminders=[3, 40]),
            "follow_up.not_operated.timepoints[1].reminders[1]",
            "reminder on day 40 falls after the window closes (day 28)",
        ),
        (
            lambda d: d["follow_up"]["not_operated"]["timepoints"][0].update(anchor="surgery"),
            "follow_up.not_operated.timepoints[0].anchor",
            "counted from its anchor 'no_surgery_decision', not 'surgery'",
        ),
        (
            lambda d: d["follow_up"]["not_operated"]["timepoints"][0].update(key="m3"),
            "follow_up.not_operated.timepoints[0].key",
            "duplicate time point 'm3'",
        ),
        (
            lambda d: d["timepoints"][3].update(anchor="no_surgery_decision"),
            "timepoints[3].anchor",
            "belong in follow_up.not_operated.timepoints",
        ),
        (
            lambda d: d["follow_up"].update(withdrawn=d["follow_up"]["not_operated"]),
            "follow_up",
            "'withdrawn' is not one of ['not_operated']",
        ),
        (
            lambda d: d["anchors"]["surgery"].update(not_before="chemo"),
            "anchors.surgery.not_before",
            "unknown anchor 'chemo'",
        ),
        (
            lambda d: d["anchors"]["inclusion"].update(not_before="surgery"),
            "anchors.inclusion",
            "the inclusion date is the registration's; it takes no rules",
        ),
        (
            lambda d: d["anchors"].pop("inclusion"),
            "anchors",
            "the anchor 'inclusion' is required",
        ),
        (
            lambda d: (
                d["anchors"]["no_surgery_decision"].update(not_before="surgery")
                or d["anchors"]["surgery"].update(not_before="no_surgery_decision")
            ),
            "anchors.no_surgery_decision.not_before",
            "goes round in a circle (no_surgery_decision -> surgery -> no_surgery_decision)",
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
