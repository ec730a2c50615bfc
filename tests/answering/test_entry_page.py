"""The paper and telephone entry page: reached from the time point's page by the nurses of the
patient's site, every question shown with its answers and "Left blank", refusals shown next to
the question with the nurse's choices kept, the time point scored once saved."""

from __future__ import annotations

import re

from sqlalchemy import select

from pro_service.models import Assessment, Score

from pages import csrf_of, read


def _first_open(app, staff_study) -> int:
    """UPP-001's "before surgery" time point: surgery is in 5 days, so its window is open."""
    patient_id = staff_study.patients["UPP-001"]
    return read(
        app,
        lambda s: s.scalar(
            select(Assessment.id).where(
                Assessment.patient_id == patient_id, Assessment.timepoint == "preop"
            )
        ),
    )


def _all_items(page: str) -> list[int]:
    return sorted({int(n) for n in re.findall(r'name="q(\d+)" value="blank"', page)})


def test_a_nurse_enters_a_paper_form_from_the_time_points_page(app, sign_in, staff_study):
    assessment_id = _first_open(app, staff_study)
    status_before = read(app, lambda s: s.get(Assessment, assessment_id).status)
    client = sign_in("nurse_upp")
    overview = client.get(f"/staff/assessments/{assessment_id}?lang=en").text
    assert f'href="/staff/assessments/{assessment_id}/enter"' in overview
    assert "Enter answers from paper or telephone" in overview

    page = client.get(f"/staff/assessments/{assessment_id}/enter?lang=en").text
    items = _all_items(page)
    assert items == list(range(1, 57))  # QLQ-C30 (30) and QLQ-PAN26 (26), each with "Left blank"
    form = {"csrf_token": csrf_of(page), "mode": "paper", "language": "sv"}
    form["answered_on"] = re.search(r'name="answered_on"[^>]*value="([^"]+)"', page).group(1)
    form |= {f"q{n}": "1" for n in items}
    form["q29"] = "5"
    form["q30"] = "blank"

    del form["q40"]  # a line the nurse missed
    refused = client.post(f"/staff/assessments/{assessment_id}/enter?lang=en", data=form)
    assert refused.status_code == 400
    error = 'id="q40-errors"><li>Question 40: choose an answer, or mark it as left blank.'
    assert error in refused.text
    # The nurse's other choices are still there.
    assert re.search(r'name="q29" value="5" checked', refused.text)
    assert read(app, lambda s: s.get(Assessment, assessment_id).status) == status_before

    form["q40"] = "2"
    saved = client.post(f"/staff/assessments/{assessment_id}/enter?lang=en", data=form)
    assert saved.status_code == 303
    done = client.get(saved.headers["Location"] + "?lang=en").text
    assert "The answers are saved and the time point is scored." in done
    assert "Paper form" in done
    assert "Correct the entered answers" in done
    scores = read(
        app,
        lambda s: {
            sc.scale: sc.value
            for sc in s.scalars(select(Score).where(Score.assessment_id == assessment_id))
        },
    )
    assert scores["QL2"] is not None  # from item 29 alone: the half rule
    assert read(app, lambda s: s.get(Assessment, assessment_id).mode) == "paper"


def test_the_page_says_why_a_time_point_takes_no_entry(app, sign_in, staff_study):
    patient_id = staff_study.patients["UPP-001"]
    later = read(
        app,
        lambda s: s.scalar(
            select(Assessment.id).where(
                Assessment.patient_id == patient_id, Assessment.timepoint == "m3"
            )
        ),
    )
    client = sign_in("nurse_upp")
    assert "/enter" not in client.get(f"/staff/assessments/{later}?lang=en").text
    page = client.get(f"/staff/assessments/{later}/enter?lang=en").text
    assert "Time point m3 is not open yet: its window opens on" in page
    assert 'name="q1"' not in page


def test_a_cancelled_time_point_says_so_in_the_pages_language(app, sign_in, staff_study):
    from pro_service.extensions import db

    patient_id = staff_study.patients["UPP-001"]
    with app.app_context():
        preop = db.session.scalars(
            select(Assessment).where(
                Assessment.patient_id == patient_id, Assessment.timepoint == "preop"
            )
        ).one()
        preop.status = "cancelled"
        db.session.commit()
        preop_id = preop.id
    page = sign_in("nurse_upp").get(f"/staff/assessments/{preop_id}/enter?lang=sv").text
    assert "förväntas inte av den här patienten (Inställd)" in page
