"""``pro-service export`` files, messages, exit codes, no half-written file."""

from __future__ import annotations

import csv
import re

import pytest
from sqlalchemy import select

from pro_service.models import Assessment, AuditEvent

FORMATS = ["long", "wide", "sav", "dta", "fhir"]


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _phone_forms(typed: str, e164: str) -> set[bytes]:
    digits = re.sub(r"\D", "", e164)
    national = "0" + digits[2:] if e164.startswith("+46") else "0" + digits[3:]
    forms = {typed, e164, digits, national, digits[-9:], national[1:]}
    return {f.encode() for f in forms} | {f.encode("utf-16-le") for f in forms}


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_export_contains_a_phone_number_or_link_token(fmt, runner, session, study, out_dir):
    out = out_dir / f"all.{fmt}"
    result = runner.invoke(args=["export", "--format", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    blobs = out.read_bytes() + (out_dir / f"all.{fmt}.dictionary.csv").read_bytes()
    assert b"UPP-001" in blobs or fmt in ("sav", "dta")
    for typed, e164 in study.phones.values():
        for form in _phone_forms(typed, e164):
            assert form not in blobs, form
    token_hashes = session.scalars(
        select(Assessment.token_hash).where(Assessment.token_hash.isnot(None))
    )
    for token_hash in token_hashes:
        assert token_hash.encode() not in blobs


@pytest.mark.parametrize("completed_only", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_writes_the_file_and_its_dictionary_and_says_so(
    fmt, completed_only, runner, session, study, out_dir
):
    out = out_dir / f"scanpan.{fmt}"
    flags = ["--completed-only"] if completed_only else []
    result = runner.invoke(args=["export", "--format", fmt, "-o", str(out), *flags])
    assert result.exit_code == 0, result.output
    assert _files(out_dir) == sorted([out.name, f"{out.name}.dictionary.csv"])
    # Every expected time point: 17 (HEL-001 has no surgery date yet: its baseline only); the
    # 6 completed ones; FHIR: those with answers (the 6, and UPP-002's started m3).
    expected = 6 if completed_only else (7 if fmt == "fhir" else 17)
    assert f"({expected} assessments)" in result.output
    assert "data dictionary" in result.output
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.written")).one()
    assert event.actor_type == "operator"
    assert event.after["format"] == fmt and event.after["assessments"] == expected
    assert event.after["filters"]["completed_only"] is completed_only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "SE-XXX"], "no site with code 'SE-XXX' (known: FI-HEL, SE-UPP)"),
        (["--timepoint", "m5"], "no time point 'm5' (known: baseline, preop, m3"),
        (["--instrument", "qlq-br23"], "no instrument 'qlq-br23' (known: qlq-c30, qlq-pan26)"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "is before the start date"),
        (["--format", "xlsx"], "'xlsx' is not one of"),
        (["--from", "yesterday"], "'yesterday' does not match the format"),
    ],
)
def test_bad_filters_get_a_clear_message_exit_2_and_no_file(args, message, runner, study, out_dir):
    out = out_dir / "out.csv"
    argv = ["export", "-o", str(out), *args]
    if "--format" not in args:
        argv += ["--format", "wide"]
    result = runner.invoke(args=argv)
    assert result.exit_code == 2
    assert message in result.output
    assert _files(out_dir) == []


def test_an_unwritable_path_is_refused_before_anything_is_written(runner, study, out_dir):
    missing = out_dir / "no-such-folder" / "out.csv"
    result = runner.invoke(args=["export", "--format", "long", "-o", str(missing)])
    assert result.exit_code == 2
    assert f"folder {missing.parent} does not exist" in result.output
    result = runner.invoke(args=["export", "--format", "long", "-o", str(out_dir)])
    assert result.exit_code == 2
    assert _files(out_dir) == []


def test_a_filter_matching_nothing_gives_headers_only_and_says_so(runner, study, out_dir):
    out = out_dir / "empty.csv"
    result = runner.invoke(
        args=[
            "export",
            "--format",
            "long",
            "-o",
            str(out),
            "--timepoint",
            "m24",
            "--completed-only",
        ]
    )
    assert result.exit_code == 0
    assert "No time points match the filters" in result.output
    assert out.read_text().splitlines() == [
        "study_id,site,timepoint,days_from_surgery,completed_at,status,missing_reason,mode,"
        "review_flag,instrument,version,language,scale,score,items_in_scale,items_answered,"
        "algorithm_version"
    ]


def test_a_filter_matching_nothing_in_fhir_gives_the_questionnaires_only(runner, study, out_dir):
    out = out_dir / "empty.ndjson"
    result = runner.invoke(
        args=["export", "--format", "fhir", "-o", str(out), "--site", "FI-HEL", "--timepoint", "m3"]
    )
    assert result.exit_code == 0
    assert "holds Questionnaires only" in result.output
    assert [line[:40] for line in out.read_text().splitlines()] == [
        '{"resourceType":"Questionnaire","id":"ql',
        '{"resourceType":"Questionnaire","id":"ql',
    ]


def test_a_failure_half_way_leaves_no_partial_file_and_the_old_export_untouched(
    runner, study, out_dir, monkeypatch
):
    out = out_dir / "scanpan.csv"
    out.write_text("last week's export\n")
    import pro_service.exports.engine as engine

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine, "write_dictionary", disk_full)
    result = runner.invoke(args=["export", "--format", "wide", "-o", str(out)])
    assert result.exit_code != 0
    assert out.read_text() == "last week's export\n"
    assert _files(out_dir) == ["scanpan.csv"]  # no .part files left behind


def test_the_dictionary_says_which_way_is_better_and_flags_the_unsettled_pan26_scales(
    runner, study, out_dir
):
    out = out_dir / "scanpan.csv"
    assert runner.invoke(args=["export", "--format", "wide", "-o", str(out)]).exit_code == 0
    with open(f"{out}.dictionary.csv", newline="", encoding="utf-8") as f:
        notes = {row["variable"]: row["notes"] for row in csv.DictReader(f)}
    assert notes["QL2"].startswith("higher is better")
    assert notes["FA"].startswith("higher is worse")
    assert notes["PF2"].startswith("higher is better")
    for scale, items, scores_high in (
        ("PAN_SA", "53 and 54", True),
        ("PAN_SX", "55 and 56", False),
    ):
        assert notes[scale].startswith("higher is better"), scale
        assert "DIRECTION NOT VERIFIED" in notes[scale]
        assert "known open point in the manual" in notes[scale]
        assert f"Items {items}" in notes[scale]
        assert ("'very much' scores high" in notes[scale]) is scores_high
    # every other PAN26 scale is settled and says so without the warning
    assert "NOT VERIFIED" not in notes["PAN_PP"]
