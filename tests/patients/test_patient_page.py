"""The patient page: header, time line with messages, answers and scores, score charts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, time

import pytest
from markupsafe import escape
from sqlalchemy import event, select

from pro_service.answering.responses import complete_assessment, instruments_of, save_answers
from pro_service.audit import Actor
from pro_service.extensions import db
from pro_service.messaging.events import apply_status_callback
from pro_service.messaging.outbox import queue_invitations, queue_resend
from pro_service.models import Assessment, AssessmentStatus, OutboxMessage, Patient, Score
from pro_service.patients.overview import is_worsening
from pro_service.scheduling.assessments import issue_token

from pages import read

SVG = "{http://www.w3.org/2000/svg}"

# QL2 (items 29, 30; 1-7) = (mean - 1) / 6 * 100; FA (items 10, 12, 18; 1-4) = (mean - 1) / 3 * 100.
BASELINE = {29: 6, 30: 6, 10: 1, 12: 1, 18: 1}  # QL2 83.3, FA 0
PREOP = {29: 5, 30: 6, 10: 2, 12: 1, 18: 1}  # QL2 75.0 (-8.3), FA 11.1 (+11.1: worse)
M3 = {29: 5, 30: 5, 10: 1, 12: 1, 18: 1}  # QL2 66.7 (-16.7: worse), FA 0


def _assessment(session, study_id: str, timepoint: str) -> Assessment:
    return session.scalars(
        select(Assessment)
        .join(Patient)
        .where(Patient.study_id == study_id, Assessment.timepoint == timepoint)
    ).one()


def _open(app, session, assessment: Assessment, when: datetime) -> None:
    assessment.status = AssessmentStatus.OPEN.value
    assessment.opened_at = when
    issue_token(assessment, app.extensions["vault"])


def complete(app, study_id: str, timepoint: str, answers: dict[int, int]) -> int:
    """Answer every item (``answers`` where given, else the item's second code) and complete."""
    registry = app.extensions["instruments"]
    with app.app_context():
        session = db.session
        assessment = _assessment(session, study_id, timepoint)
        when = datetime.combine(assessment.due_date, time(10), tzinfo=UTC)
        _open(app, session, assessment, when)
        language = assessment.patient.language
        for instrument in instruments_of(assessment, registry):
            save_answers(
                session,
                now=when,
                assessment=assessment,
                instrument=instrument,
                language=language,
                answers={
                    number: answers.get(number, item.codes[1])
                    for number, item in instrument.items.items()
                },
            )
        assert complete_assessment(
            session,
            now=when,
            assessment=assessment,
            registry=registry,
            language=language,
            actor=Actor("patient", str(assessment.patient_id)),
        )
        session.commit()
        return assessment.id


def set_score(app, assessment_id: int, scale: str, value: float) -> None:
    with app.app_context():
        score = db.session.scalars(
            select(Score).where(Score.assessment_id == assessment_id, Score.scale == scale)
        ).one()
        score.value = value
        db.session.commit()


@pytest.fixture
def answered(app, staff_study):
    """UPP-002 (surgery 95 days ago) has baseline, preop and m3 completed."""
    return {
        tp: complete(app, "UPP-002", tp, answers)
        for tp, answers in (("baseline", BASELINE), ("preop", PREOP), ("m3", M3))
    }


def score_rows(html: str, scale: str) -> list[tuple[str, str, bool]]:
    """(time point label, score, marked worse) for each row of one scale's score table."""
    section = re.search(
        rf'<section class="score-series" aria-labelledby="scale-{scale}">(.*?)</section>',
        html,
        re.S,
    )
    assert section, f"no section for {scale}"
    rows = []
    for row in re.findall(r"<tr(.*?)</tr>", section.group(1), re.S)[1:]:
        cells = [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        rows.append((cells[0], cells[2], "Worse" in cells[4]))
    return rows


def chart_points(svg: bytes) -> tuple[int, int]:
    """(points drawn, points marked as worse) in a chart SVG."""
    root = ET.fromstring(svg)
    counts = []
    for gid in ("scores", "worsened"):
        group = root.find(f".//{SVG}g[@id='{gid}']")
        counts.append(0 if group is None else len(group.findall(f".//{SVG}use")))
    return counts[0], counts[1]


def test_the_page_shows_the_patient_and_the_time_line(app, sign_in, staff_study, answered):
    client = sign_in("nurse_upp")
    page = client.get(f"/staff/patients/{staff_study.patients['UPP-002']}")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.text
    assert "Patient UPP-002" in html
    assert "SE-UPP – Uppsala" in html
    assert "Baseline" in html and "Before surgery" in html and "3 months after surgery" in html
    # Completed time points link to their answers; upcoming ones do not.
    for assessment_id in answered.values():
        assert f'href="/staff/assessments/{assessment_id}"' in html
    m6_id = read(app, lambda s: _assessment(s, "UPP-002", "m6").id)
    assert f"/staff/assessments/{m6_id}" not in html
    assert "Upcoming" in html
    # Days from surgery: the preop time point (due 7 days before surgery) is at day -7.
    preop_row = re.search(r"<th scope=\"row\">Before surgery</th>(.*?)</tr>", html, re.S)
    assert preop_row and '<td class="number">-7</td>' in preop_row.group(1)


def test_messages_show_status_and_error_code_but_never_the_number(app, sign_in, staff_study):
    now = datetime.now(UTC)
    with app.app_context():
        session = db.session
        assessment = _assessment(session, "UPP-001", "preop")  # its window is open today
        _open(app, session, assessment, now)
        queue_invitations(session, now=now, schedule=app.extensions["schedule"])
        queue_resend(session, now=now, actor=Actor.staff(1), assessment=assessment)
        invitation, resend = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.assessment_id == assessment.id)
            .order_by(OutboxMessage.id)
        ).all()
        apply_status_callback(
            session, now=now, sid="SM1", message_id=invitation.id, provider_status="delivered"
        )
        apply_status_callback(
            session,
            now=now,
            sid="SM2",
            message_id=resend.id,
            provider_status="undelivered",
            error_code="30003",
        )
        session.commit()
    html = sign_in("nurse_upp").get(f"/staff/patients/{staff_study.patients['UPP-001']}").text
    assert "Invitation" in html and "Delivered" in html
    assert "Link sent again" in html and "Not delivered" in html
    assert "error code 30003" in html
    for number in ("070-174 06 05", "0701740605", "+46701740605", "701740605"):
        assert number not in html


def test_answers_and_scores_of_a_time_point(app, sign_in, staff_study, answered):
    registry = app.extensions["instruments"]
    client = sign_in("nurse_upp")
    page = client.get(f"/staff/assessments/{answered['m3']}")
    assert page.status_code == 200
    html = page.text
    stored = read(
        app,
        lambda s: s.execute(
            select(Score.scale, Score.value, Score.items_answered, Score.items_in_scale).where(
                Score.assessment_id == answered["m3"]
            )
        ).all(),
    )
    assert len(stored) > 30  # every scale of both instruments
    for score in stored:
        row = re.search(rf'<th scope="row">{score.scale}</th>(.*?)</tr>', html, re.S)
        assert row, score.scale
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
        assert cells[1] == f"{score.value:.1f}"
        assert cells[2:] == [str(score.items_answered), str(score.items_in_scale)]
    c30 = registry.get("qlq-c30", "3.0")
    for number, code in ((29, 5), (30, 5), (10, 1), (1, c30.item(1).codes[1])):
        expected = (
            rf'<th scope="row" class="number">{number}</th>\s*'
            rf"<td>{re.escape(str(escape(c30.item_text(number, 'en'))))}</td>\s*"
            rf'<td class="number">{code}</td>\s*'
            rf"<td>{re.escape(str(escape(c30.label(number, code, 'en'))))}</td>"
        )
        assert re.search(expected, html), number
    # The same time point read in Swedish shows the Swedish item text and answer label.
    swedish = client.get(f"/staff/assessments/{answered['m3']}?lang=sv").text
    assert str(escape(c30.item_text(29, "sv"))) in swedish
    assert str(escape(c30.label(29, 5, "sv"))) in swedish
    # The language the patient answered in is named, never given as a code.
    answered_in = re.findall(r"Svarsspråk: ([^<]*)</p>", swedish)
    assert answered_in and all(
        name in {"Svenska", "Suomi", "English"} for line in answered_in for name in line.split(", ")
    ), answered_in


def test_scores_on_the_patient_page_equal_the_stored_ones(app, sign_in, staff_study, answered):
    html = sign_in("investigator").get(f"/staff/patients/{staff_study.patients['UPP-002']}").text
    values = read(
        app,
        lambda s: {
            (a, scale): value
            for a, scale, value in s.execute(
                select(Score.assessment_id, Score.scale, Score.value).where(
                    Score.assessment_id.in_(list(answered.values()))
                )
            )
        },
    )
    for scale in ("QL2", "PF2", "FA", "PA", "C30_SUMMARY", "PAN_PP"):
        rows = score_rows(html, scale)
        assert [r[1] for r in rows] == [
            f"{values[(answered[tp], scale)]:.1f}" for tp in ("baseline", "preop", "m3")
        ]


def test_a_worsening_of_10_points_or_more_is_marked(app, sign_in, staff_study, answered):
    html = sign_in("nurse_upp").get(f"/staff/patients/{staff_study.patients['UPP-002']}").text
    # QL2 (higher is better): -8.3 at preop is not marked, -16.7 at m3 is.
    assert score_rows(html, "QL2") == [
        ("Baseline", "83.3", False),
        ("Before surgery", "75.0", False),
        ("3 months after surgery", "66.7", True),
    ]
    # FA (a symptom: higher is worse): +11.1 at preop is marked, back to 0 at m3 is not.
    assert [r[2] for r in score_rows(html, "FA")] == [False, True, False]


def test_the_threshold_is_10_points_not_9(app, sign_in, staff_study, answered):
    set_score(app, answered["baseline"], "QL2", 70.0)
    set_score(app, answered["preop"], "QL2", 61.0)  # 9 points worse
    set_score(app, answered["m3"], "QL2", 60.0)  # 10 points worse
    set_score(app, answered["preop"], "FA", 10.0)  # symptom: +10 is worse
    set_score(app, answered["m3"], "FA", 9.0)  # +9 is not marked
    client = sign_in("nurse_upp")
    html = client.get(f"/staff/patients/{staff_study.patients['UPP-002']}").text
    assert [r[2] for r in score_rows(html, "QL2")] == [False, False, True]
    assert [r[2] for r in score_rows(html, "FA")] == [False, True, False]
    assert chart_points(
        client.get(f"/staff/patients/{staff_study.patients['UPP-002']}/chart/QL2.svg").data
    ) == (3, 1)
    # Floating-point scores that are 10 apart on paper are marked too.
    assert is_worsening(100 / 3 - (100 / 3 + 10), higher_is_better=True)
    assert not is_worsening(-9.999, higher_is_better=True)


def test_without_a_baseline_score_nothing_is_marked(app, sign_in, staff_study):
    complete(app, "UPP-002", "preop", BASELINE)
    complete(app, "UPP-002", "m3", M3)  # QL2 16.7 lower than preop, but preop is no baseline
    client = sign_in("nurse_upp")
    html = client.get(f"/staff/patients/{staff_study.patients['UPP-002']}").text
    assert "No baseline score for this scale: worsening is not marked." in html
    assert [r[2] for r in score_rows(html, "QL2")] == [False, False]
    svg = client.get(f"/staff/patients/{staff_study.patients['UPP-002']}/chart/QL2.svg").data
    assert chart_points(svg) == (2, 0)


def test_the_chart_is_an_svg_with_one_point_per_completed_time_point(
    app, sign_in, staff_study, answered
):
    client = sign_in("nurse_upp")
    patient_id = staff_study.patients["UPP-002"]
    page = client.get(f"/staff/patients/{patient_id}").text
    for scale in ("QL2", "PF2", "FA", "PA", "C30_SUMMARY", "PAN_PP"):
        assert f'src="/staff/patients/{patient_id}/chart/{scale}.svg"' in page
        response = client.get(f"/staff/patients/{patient_id}/chart/{scale}.svg")
        assert response.status_code == 200
        assert response.mimetype == "image/svg+xml"
        assert response.headers["Cache-Control"] == "no-store"
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "style-src 'unsafe-inline'" in policy
        assert "script" not in policy
        drawn, _marked = chart_points(response.data)
        assert drawn == 3
    assert chart_points(client.get(f"/staff/patients/{patient_id}/chart/QL2.svg").data) == (3, 1)
    alt = re.search(r'<img class="score-chart"[^>]*alt="([^"]+)"', page, re.S)
    assert alt and "days from surgery" in alt.group(1)


def test_without_a_surgery_date_days_count_from_inclusion(app, sign_in, staff_study):
    complete(app, "HEL-001", "baseline", BASELINE)
    client = sign_in("nurse_hel")
    patient_id = staff_study.patients["HEL-001"]
    html = client.get(f"/staff/patients/{patient_id}?lang=en").text
    assert "Days from inclusion" in html
    assert "against days from inclusion (no surgery date)" in html
    assert [r[:2] for r in score_rows(html, "QL2")] == [("Baseline", "83.3")]
    assert chart_points(client.get(f"/staff/patients/{patient_id}/chart/QL2.svg").data) == (1, 0)


def test_another_sites_nurse_gets_404_everywhere(sign_in, staff_study, answered):
    client = sign_in("nurse_hel")
    patient_id = staff_study.patients["UPP-002"]
    assert client.get(f"/staff/patients/{patient_id}").status_code == 404
    assert client.get(f"/staff/assessments/{answered['m3']}").status_code == 404
    assert client.get(f"/staff/patients/{patient_id}/chart/QL2.svg").status_code == 404


def test_data_managers_have_no_patient_pages(sign_in, staff_study, answered):
    client = sign_in("data_manager")
    patient_id = staff_study.patients["UPP-002"]
    assert client.get(f"/staff/patients/{patient_id}").status_code == 404
    assert client.get(f"/staff/assessments/{answered['m3']}").status_code == 404
    assert client.get(f"/staff/patients/{patient_id}/chart/QL2.svg").status_code == 404


@pytest.mark.parametrize("persona", ["investigator", "investigator_upp", "admin"])
def test_investigators_and_admins_read_the_page_without_the_phone_number(
    sign_in, staff_study, answered, persona
):
    client = sign_in(persona)
    html = client.get(f"/staff/patients/{staff_study.patients['UPP-002']}").text
    assert "Patient UPP-002" in html
    for number in ("070-174 06 06", "0701740606", "+46701740606", "701740606"):
        assert number not in html
    assert client.get(f"/staff/assessments/{answered['m3']}").status_code == 200
    hel = client.get(f"/staff/patients/{staff_study.patients['HEL-001']}").status_code
    assert hel == (404 if persona == "investigator_upp" else 200)


def test_unknown_ids_and_scales_are_404(sign_in, staff_study):
    client = sign_in("nurse_upp")
    patient_id = staff_study.patients["UPP-001"]
    assert client.get("/staff/patients/999999").status_code == 404
    assert client.get("/staff/assessments/999999").status_code == 404
    assert client.get("/staff/patients/999999/chart/QL2.svg").status_code == 404
    assert client.get(f"/staff/patients/{patient_id}/chart/NOPE.svg").status_code == 404
    assert client.get(f"/staff/patients/{patient_id}/chart/PAN_SX.svg").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, staff_study):
    response = client.get(f"/staff/patients/{staff_study.patients['UPP-001']}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login")


def test_the_number_of_queries_does_not_grow_with_time_points(app, sign_in, staff_study):
    client = sign_in("investigator")
    engine = app.extensions["pro_db"]["engine"]
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    def queries(study_id: str) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = client.get(f"/staff/patients/{staff_study.patients[study_id]}")
            assert page.status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    # HEL-001: one time point (no surgery date), completed, no messages.
    complete(app, "HEL-001", "baseline", BASELINE)
    few = queries("HEL-001")
    # UPP-002: eight time points, three completed, two open with their invitations.
    for timepoint, answers in (("baseline", BASELINE), ("preop", PREOP), ("m3", M3)):
        complete(app, "UPP-002", timepoint, answers)
    now = datetime.now(UTC)
    with app.app_context():
        for timepoint in ("m6", "m9"):
            _open(app, db.session, _assessment(db.session, "UPP-002", timepoint), now)
        assert queue_invitations(db.session, now=now, schedule=app.extensions["schedule"]).queued
        db.session.commit()
    assert queries("UPP-002") == few
