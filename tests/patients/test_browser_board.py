"""The completion board on a 1280-pixel screen: a site's usual columns fit without sideways
scrolling in every language, and a patient's overdue time point is marked in the row itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from pro_service.audit import Actor
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Assessment, MessageStatus, OutboxMessage, Site

from browser import chromium, serve
from builders import PASSWORD, build_patient

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
OVERDUE_FLAG = {"sv": "Försenad", "fi": "Myöhässä", "en": "Overdue"}


@pytest.fixture
def long_followed_patient(app, staff_study) -> str:
    """UPP-099: every time point of the schedule dated, the widest cells the board shows (a
    long status, an undelivered SMS and two reminders), the first one overdue."""
    now = utcnow()
    today = now.date()
    with app.app_context():
        session = db.session
        site = session.get(Site, staff_study.sites["SE-UPP"])
        patient = build_patient(
            app,
            session,
            now=now,
            actor=Actor.operator(),
            site=site,
            study_id="UPP-099",
            phone="070-174 06 99",
            language="fi",
            inclusion_date=today - timedelta(days=800),
            surgery_date=today - timedelta(days=790),
        )
        assessments = session.scalars(
            select(Assessment).where(Assessment.patient_id == patient.id).order_by(Assessment.id)
        ).all()
        for n, assessment in enumerate(assessments):
            assessment.status = "in_progress" if n == 0 else ("partial", "expired")[n % 2]
            if n == 0:
                assessment.due_date = today - timedelta(days=3)
                assessment.window_closes = today + timedelta(days=10)
            for kind, status in (
                ("invitation", MessageStatus.DELIVERED),
                ("reminder", MessageStatus.SENT),
                ("reminder", MessageStatus.UNDELIVERED),
            ):
                session.add(
                    OutboxMessage(
                        patient_id=patient.id,
                        assessment_id=assessment.id,
                        kind=kind,
                        language="fi",
                        scheduled_for=now,
                        status=status.value,
                        attempts=1,
                        created_at=now,
                        updated_at=now,
                    )
                )
        session.commit()
    return "UPP-099"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_board_fits_1280_pixels_and_marks_overdue_in_the_row(
    app, staff_study, long_followed_patient
):
    problems = []
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(viewport=DESKTOP, locale="en-GB").new_page()
        page.goto(f"{base}/staff/?lang=en")
        page.get_by_label("Email").fill("anna.nurse@upp.example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        for lang in ("sv", "fi", "en"):
            page.goto(f"{base}/staff/board?site={staff_study.sites['SE-UPP']}&lang={lang}")
            columns = page.locator("table.board thead th").count()
            assert columns == 3 + 8, columns  # study ID, participation, flags, 8 time points
            sideways = page.evaluate(
                "() => { const t = document.querySelector('.table-scroll');"
                " return [document.documentElement.scrollWidth - window.innerWidth,"
                " t.scrollWidth - t.clientWidth]; }"
            )
            if max(sideways) > 0:
                problems.append(f"{lang}: {max(sideways)} px to scroll sideways")
            row = page.locator("table.board tbody tr", has_text=long_followed_patient)
            flags = row.locator("td.flags").inner_text()
            if OVERDUE_FLAG[lang] not in flags:
                problems.append(f"{lang}: the flags cell says {flags!r}, not overdue")
    app.extensions["pro_db"]["engine"].dispose()
    assert problems == []
