"""Spreadsheet formulas never reach a CSV cell as formulas (OWASP CSV injection)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update

from pro_service.instruments.csv_dialect import formula_safe, formula_safe_sql
from pro_service.models import Patient, Site
from pro_service.patients.registry import PatientDataError, check_study_id

FORMULAS = ['=HYPERLINK("http://x.example","x")', "+SUM(1+1)", "@SUM(1)", "-2+3", "\t=1", "\r=1"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_text_a_spreadsheet_would_run_gets_a_leading_apostrophe(cell):
    assert formula_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["UPP-001", "-1.5", "+3", "1e5", "-.5", "", "a=b"])
def test_numbers_and_plain_text_stay_as_they_are(cell):
    assert formula_safe(cell) == cell


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_neutralises_exactly_as_python_does(session):
    samples = [*FORMULAS, "UPP-001", "-1.5", "+3", "1e5", "-.5", "-", "+", "-٣", "=", "'=1"]

    @settings(max_examples=150, deadline=None)
    @given(st.text(alphabet=st.sampled_from("=+-@\t\r.eE0123456789٣²aZ '"), max_size=8))
    def agree(cell: str) -> None:
        got = session.scalar(text(f"SELECT {formula_safe_sql(':cell')}"), {"cell": cell})
        assert got == formula_safe(cell), repr(cell)

    for cell in samples:
        got = session.scalar(text(f"SELECT {formula_safe_sql(':cell')}"), {"cell": cell})
        assert got == formula_safe(cell), repr(cell)
    agree()


def _plant_formulas(session, study):  # type: ignore[no-untyped-def]
    """Study ids as an older version let them in, and a site code (stored data, not the forms)."""
    session.execute(
        update(Patient).where(Patient.study_id == "UPP-001").values(study_id="=HYPERLINK(1)")
    )
    session.execute(update(Patient).where(Patient.study_id == "UPP-002").values(study_id="@SUM(1)"))
    session.execute(update(Site).where(Site.code == "FI-HEL").values(code="+FI"))
    session.commit()


@pytest.mark.parametrize("fmt", ["long", "wide"])
def test_exported_csv_holds_no_formula(fmt, session, study, export, helpers):
    _plant_formulas(session, study)
    rows = helpers.read_csv(export(fmt))
    study_ids = {row["study_id"] for row in rows}
    assert study_ids == {"'=HYPERLINK(1)", "'@SUM(1)", "HEL-001"}
    assert {row["site"] for row in rows} == {"SE-UPP", "'+FI"}
    for row in rows:
        for name, cell in row.items():
            if cell[:1] in ("=", "+", "@", "\t", "\r"):
                pytest.fail(f"{name} starts a formula: {cell!r}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("fmt", ["long", "wide"])
def test_copy_and_python_paths_neutralise_the_same_bytes(fmt, app, session, study, export):
    from pro_service.exports import ExportFilters
    from pro_service.exports.long_table import LongTable
    from pro_service.exports.source import resolve_filters
    from pro_service.exports.wide_table import WideTable

    _plant_formulas(session, study)
    by_copy = export(fmt, name=f"copy.{fmt}.csv", completed_only=False).read_bytes()
    registry = app.extensions["instruments"]
    selection = resolve_filters(
        session, ExportFilters(), registry=registry, schedule=app.extensions["schedule"]
    )
    table = LongTable if fmt == "long" else WideTable
    assert by_copy == b"".join(table(session, selection, registry=registry, by_copy=False))
    assert b"'=HYPERLINK(1)" in by_copy


def test_the_dictionary_says_how_formulas_are_kept_out(study, export, helpers):
    from pro_service.exports import dictionary_path_for

    dictionary = dictionary_path_for(export("long"))
    notes = {row["variable"]: row["notes"] for row in helpers.read_csv(dictionary)}
    assert "leading '" in notes["study_id"] and "formula" in notes["study_id"]


@pytest.mark.parametrize("study_id", ["=1+1", "+46", "@A", "-X", "\t=1"])
def test_a_study_id_that_looks_like_a_formula_is_refused(session, make_site, study_id):
    site = make_site()
    with pytest.raises(PatientDataError, match="formula") as refused:
        check_study_id(session, site, study_id)
    assert refused.value.field == "study_id"


def test_the_import_refuses_a_formula_study_id_and_registers_nothing(
    runner, session, make_site, tmp_path
):
    make_site("SE-UPP")
    session.commit()
    path = tmp_path / "patients.csv"
    path.write_text(
        "study_id;site;phone;language;inclusion_date\n"
        "=HYPERLINK(1);SE-UPP;070-174 06 05;sv;2026-03-10\n"
        "UPP-009;SE-UPP;070-174 06 06;sv;2026-03-10\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["import-patients", str(path)])
    assert result.exit_code != 0
    assert "formula" in result.output
    session.expire_all()
    assert session.query(Patient).count() == 0
