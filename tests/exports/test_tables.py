"""Long and wide CSV: the scores are the engine's, the raw answers are the stored ones."""

from __future__ import annotations

from datetime import date

import pytest

LONG_HEADER = [
    "study_id",
    "site",
    "timepoint",
    "days_from_surgery",
    "completed_at",
    "status",
    "missing_reason",
    "mode",
    "review_flag",
    "instrument",
    "version",
    "language",
    "scale",
    "score",
    "items_in_scale",
    "items_answered",
    "algorithm_version",
]


def _value(text: str) -> float | None:
    return None if text == "" else float(text)


def test_long_export_scores_equal_the_scoring_engine_on_the_stored_answers(
    app, session, study, export, helpers
):
    rows = helpers.read_csv(export("long"))
    assert list(rows[0]) == LONG_HEADER
    seen: dict[tuple[str, str], dict[str, float | None]] = {}
    for row in rows:
        seen.setdefault((row["study_id"], row["timepoint"]), {})[row["scale"]] = _value(
            row["score"]
        )
    assert set(seen) == set(study.assessment_ids)  # completed only; the started m3 is not there
    for key, assessment_id in study.assessment_ids.items():
        assert seen[key] == helpers.engine_scores(assessment_id), key
    # Missing scores exist in the data (UPP-002 answered under half) and stay empty, not 0.
    assert any(v is None for v in seen[("UPP-002", "baseline")].values())


def test_long_export_rows_carry_the_context_a_statistician_needs(study, export, helpers):
    rows = helpers.read_csv(export("long"))
    first = rows[0]
    assert (first["study_id"], first["site"], first["timepoint"]) == (
        "HEL-001",
        "FI-HEL",
        "baseline",
    )
    assert first["days_from_surgery"] == ""  # not operated
    assert first["language"] == "fi"
    assert first["algorithm_version"] == "eortc-manual-3rd-ed/1"
    assert first["completed_at"].endswith("Z")
    preop = [r for r in rows if r["study_id"] == "UPP-001" and r["timepoint"] == "preop"]
    assert {r["days_from_surgery"] for r in preop} == {"-7"}
    assert [r["instrument"] for r in preop][0] == "qlq-c30"
    assert preop[-1]["instrument"] == "qlq-pan26"
    # Ordered by study ID, then time point in schedule order.
    keys = [(r["study_id"], r["timepoint"]) for r in rows]
    assert list(dict.fromkeys(keys)) == [
        ("HEL-001", "baseline"),
        ("UPP-001", "baseline"),
        ("UPP-001", "preop"),
        ("UPP-001", "m3"),
        ("UPP-002", "baseline"),
        ("UPP-002", "preop"),
    ]


def test_wide_export_has_every_score_and_every_raw_item_per_time_point(
    app, session, study, export, helpers
):
    rows = helpers.read_csv(export("wide"))
    assert len(rows) == len(study.assessment_ids)
    header = list(rows[0])
    assert header[-56:] == [f"q{n}" for n in range(1, 57)]
    for row in rows:
        assessment_id = study.assessment_ids[(row["study_id"], row["timepoint"])]
        for scale, value in helpers.engine_scores(assessment_id).items():
            assert _value(row[scale]) == value, (row["study_id"], row["timepoint"], scale)
        answers = helpers.answers(assessment_id)
        for n in range(1, 57):
            assert row[f"q{n}"] == (str(answers[n]) if n in answers else ""), n
        assert (row["qlq_c30_version"], row["qlq_pan26_version"]) == ("3.0", "1.0")


def test_filters_select_site_time_point_instrument_and_completion_dates(study, export, helpers):
    by_site = helpers.read_csv(export("wide", sites=("fi-hel",), name="a.csv"))
    assert {r["study_id"] for r in by_site} == {"HEL-001"}
    by_timepoint = helpers.read_csv(export("wide", timepoints=("preop",), name="b.csv"))
    assert {(r["study_id"], r["timepoint"]) for r in by_timepoint} == {
        ("UPP-001", "preop"),
        ("UPP-002", "preop"),
    }
    c30_only = helpers.read_csv(export("long", instruments=("qlq-c30",), name="c.csv"))
    assert {r["instrument"] for r in c30_only} == {"qlq-c30"}
    c30_wide = helpers.read_csv(export("wide", instruments=("qlq-c30",), name="d.csv"))
    assert "q31" not in c30_wide[0] and "PAN_PP" not in c30_wide[0] and "q30" in c30_wide[0]
    all_rows = helpers.read_csv(export("wide", name="e.csv"))
    some_day = sorted(r["completed_at"][:10] for r in all_rows)[2]
    on_that_day = helpers.read_csv(
        export(
            "wide",
            name="f.csv",
            date_from=date.fromisoformat(some_day),
            date_to=date.fromisoformat(some_day),
        )
    )
    assert on_that_day
    assert {r["completed_at"][:10] for r in on_that_day} == {some_day}


def test_a_site_restricted_export_contains_only_that_site(study, export, helpers):
    rows = helpers.read_csv(export("long", allowed_site_ids={study.site_id("SE-UPP")}))
    assert rows
    assert {r["site"] for r in rows} == {"SE-UPP"}


def test_every_export_has_a_data_dictionary_with_labels_types_and_codes(study, export, helpers):
    for fmt in ("long", "wide", "sav", "dta", "fhir"):
        path = export(fmt)
        dictionary = helpers.read_csv(path.with_name(path.name + ".dictionary.csv"))
        by_name = {row["variable"]: row for row in dictionary}
        assert by_name["study_id"]["type"] == "string"
        if fmt == "long":
            assert "QL2 = EORTC QLQ-C30" in by_name["scale"]["notes"]
            assert by_name["score"]["type"] == "number"
        else:
            assert by_name["q1"]["allowed_codes"].startswith("1=Not at all; 2=")
            assert by_name["q29"]["allowed_codes"].startswith("1=")
            assert "7=" in by_name["q29"]["allowed_codes"]
            assert by_name["QL2"]["label"].startswith("EORTC QLQ-C30")


FILTER_CASES = [
    {},
    {"sites": ("fi-hel",)},
    {"timepoints": ("preop", "baseline")},
    {"instruments": ("qlq-pan26",)},
    {"date_from": "first", "date_to": "third"},
    {"timepoints": ("m24",), "completed_only": True},  # matches nothing
]
# Each case for completed time points only and for every expected time point (the default).
FILTER_CASES += [
    {**case, "completed_only": False} for case in FILTER_CASES if "completed_only" not in case
]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # COPY is PostgreSQL's
@pytest.mark.parametrize("case", range(len(FILTER_CASES)))
def test_long_export_by_copy_on_postgresql_gives_the_same_bytes_as_the_python_path(
    case, app, session, study, export, helpers
):
    from pro_service.exports import ExportFilters
    from pro_service.exports.long_table import LongTable
    from pro_service.exports.source import resolve_filters

    filters = {"completed_only": True} | FILTER_CASES[case]
    if "date_from" in filters:
        days = sorted({r["completed_at"][:10] for r in helpers.read_csv(export("wide", name="w"))})
        filters["date_from"] = date.fromisoformat(days[0])
        filters["date_to"] = date.fromisoformat(days[2])
    by_copy = export("long", name="by-copy.csv", **filters).read_bytes()  # what the CLI writes

    registry, schedule = app.extensions["instruments"], app.extensions["schedule"]
    selection = resolve_filters(
        session, ExportFilters(**filters), registry=registry, schedule=schedule
    )
    built = LongTable(session, selection, registry=registry, by_copy=False)
    assert not built.by_copy
    assert by_copy == b"".join(built)
    data_rows = by_copy.count(b"\n") - 1
    assert data_rows == built.rows
    if FILTER_CASES[case] == {"timepoints": ("m24",), "completed_only": True}:
        assert data_rows == 0
    else:
        assert data_rows > 0 and built.assessments > 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # the pivot query
@pytest.mark.parametrize("case", range(len(FILTER_CASES)))
def test_wide_export_by_pivot_query_on_postgresql_gives_the_same_bytes_as_the_python_path(
    case, app, session, study, export, helpers
):
    from pro_service.exports import ExportFilters
    from pro_service.exports.source import resolve_filters
    from pro_service.exports.wide_table import WideTable

    filters = {"completed_only": True} | FILTER_CASES[case]
    if "date_from" in filters:
        days = sorted({r["completed_at"][:10] for r in helpers.read_csv(export("wide", name="w"))})
        filters["date_from"] = date.fromisoformat(days[0])
        filters["date_to"] = date.fromisoformat(days[2])
    by_query = export("wide", name="by-query.csv", **filters).read_bytes()  # what the CLI writes

    registry, schedule = app.extensions["instruments"], app.extensions["schedule"]
    selection = resolve_filters(
        session, ExportFilters(**filters), registry=registry, schedule=schedule
    )
    copied = WideTable(session, selection, registry=registry)
    assert copied.by_copy
    assert b"".join(copied) == by_query
    built = WideTable(session, selection, registry=registry, by_copy=False)
    assert by_query == b"".join(built)
    data_rows = by_query.count(b"\n") - 1
    assert data_rows == built.rows == copied.rows
    if FILTER_CASES[case] == {"timepoints": ("m24",), "completed_only": True}:
        assert data_rows == 0
    else:
        assert data_rows > 0
        assert b",," in by_query  # some scores and answers are missing (partly answered forms)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("case", range(len(FILTER_CASES)))
def test_typed_wide_rows_by_pivot_query_equal_the_python_path(case, app, session, study, export):
    from pro_service.exports import ExportFilters
    from pro_service.exports.source import resolve_filters
    from pro_service.exports.wide_table import typed_wide_rows

    filters = {"completed_only": True} | FILTER_CASES[case]
    if "date_from" in filters:
        filters["date_from"] = date(2025, 5, 1)
        filters["date_to"] = date(2025, 9, 30)
    registry, schedule = app.extensions["instruments"], app.extensions["schedule"]
    selection = resolve_filters(
        session, ExportFilters(**filters), registry=registry, schedule=schedule
    )
    queried = list(typed_wide_rows(session, selection, registry=registry, by_query=True))
    built = list(typed_wide_rows(session, selection, registry=registry, by_query=False))
    assert queried == built
    for q_row, b_row in zip(queried, built, strict=True):
        assert [type(cell) for cell in q_row] == [type(cell) for cell in b_row]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_wide_export_by_pivot_query_follows_instrument_references_and_algorithms(
    app, session, study, export, helpers
):
    """Versions come from the assessment's references (a bare id is the newest version), an
    assessment holding no selected instrument is left out, and several algorithm versions are
    listed sorted, as in the Python path."""
    from sqlalchemy import update

    from pro_service.exports import ExportFilters
    from pro_service.exports.source import resolve_filters
    from pro_service.exports.wide_table import WideTable
    from pro_service.models import Assessment, Score

    first = study.assessment_ids[("UPP-001", "baseline")]
    second = study.assessment_ids[("UPP-001", "preop")]
    third = study.assessment_ids[("UPP-002", "baseline")]
    session.execute(
        update(Assessment).where(Assessment.id == first).values(instruments=["qlq-c30"])
    )
    session.execute(
        update(Assessment).where(Assessment.id == second).values(instruments=["qlq-pan26:1.0"])
    )
    session.execute(
        update(Assessment).where(Assessment.id == third).values(instruments=["qlq-c30:9.9"])
    )
    session.execute(
        update(Score)
        .where(Score.assessment_id == first, Score.scale.in_(["QL2", "PF2"]))
        .values(algorithm_version="Zeta/1")
    )
    session.commit()
    registry, schedule = app.extensions["instruments"], app.extensions["schedule"]
    for instruments in ((), ("qlq-c30",), ("qlq-pan26",)):
        selection = resolve_filters(
            session,
            ExportFilters(instruments=instruments),
            registry=registry,
            schedule=schedule,
        )
        copied = b"".join(WideTable(session, selection, registry=registry))
        built = b"".join(WideTable(session, selection, registry=registry, by_copy=False))
        assert copied == built
    rows = helpers.read_csv(export("wide", name="all.csv"))
    first_row = next(r for r in rows if r["study_id"] == "UPP-001" and r["timepoint"] == "baseline")
    assert first_row["qlq_c30_version"] == "3.0"
    assert first_row["qlq_pan26_version"] == ""
    assert first_row["algorithm_version"].startswith("Zeta/1;eortc")  # code point order
    assert not any(r["study_id"] == "UPP-002" and r["timepoint"] == "baseline" for r in rows)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_typed_wide_rows_are_read_a_batch_at_a_time(app, session, study, monkeypatch):
    from pro_service.exports import ExportFilters, wide_table
    from pro_service.exports.source import resolve_filters

    monkeypatch.setattr(wide_table, "REPORT_EVERY", 2)
    registry, schedule = app.extensions["instruments"], app.extensions["schedule"]
    selection = resolve_filters(session, ExportFilters(), registry=registry, schedule=schedule)
    batches: list[int] = []
    rows = wide_table.typed_wide_rows(
        session, selection, registry=registry, on_examined=batches.append
    )
    assert rows.count == 0
    first = next(iter(rows))
    assert first[0] == "HEL-001"
    assert batches == []  # the first batch is still being handed out
    rest = list(rows)
    # Every expected time point: HEL-001's baseline (no surgery date yet), 8 of each UPP patient.
    assert rows.count == len(rest) + 1 == 17
    assert batches == [2] * 8 + [1]
