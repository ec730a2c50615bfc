"""A nurse in Chromium: two-factor sign-in, registers a patient, sets the surgery date, and sees
the board change once that patient has answered the questionnaire from the SMS link."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Assessment, AssessmentStatus, Patient, StaffUser
from pro_service.scheduling.assessments import current_token, today_in

from browser import chromium, serve
from builders import PASSWORD, SITES
from pages import read

pytestmark = pytest.mark.browser

SECRET = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def nurse_with_two_factor(app, staff_study) -> str:
    with app.app_context():
        user = db.session.get(StaffUser, staff_study.users["nurse_upp"])
        user.totp_secret_encrypted = app.extensions["vault"].encrypt(SECRET)
        db.session.commit()
        return user.email


def _open_link(app, study_id: str) -> str:
    """What the invitation SMS carries: the link of the patient's open baseline."""
    with app.app_context():
        baseline = db.session.scalar(
            select(Assessment)
            .join(Patient)
            .where(Patient.study_id == study_id, Assessment.timepoint == "baseline")
        )
        token = current_token(baseline, app.extensions["vault"])
        db.session.commit()
        assert token is not None
        return f"/q/{token}"


def _answer_all(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("link", name="Start").click()
    page.wait_for_url(re.compile(r"/s/1(\?.*)?$"))
    # Each "Next" waits for the following page to arrive: reading the page while the browser
    # is between two documents would find no button and stop early.
    while (screen := re.search(r"/s/(\d+)(\?.*)?$", page.url)) is not None:
        number = int(screen.group(1))
        names = page.eval_on_selector_all(
            "fieldset.item input[type=radio]", "els => [...new Set(els.map(e => e.name))]"
        )
        for name in names:
            page.locator(f"input[name={name}]").first.check()
        page.locator("button[value=next]").click()
        page.wait_for_url(re.compile(rf"/s/{number + 1}(\?.*)?$|/review(\?.*)?$"))
    page.get_by_role("button", name="Send my answers").click()
    assert page.locator("h1").inner_text() == "Thank you"


def _baseline_cell(page) -> str:  # type: ignore[no-untyped-def]
    """The board's cell of UPP-042's baseline (columns: participation, flags, time points)."""
    row = page.locator("tr", has=page.get_by_role("link", name="UPP-042"))
    return row.locator("td").nth(2).inner_text()


def test_a_nurse_registers_a_patient_and_sees_the_board_change(app, nurse_with_two_factor):
    # The site's own day: the board and the schedule count in it, not in UTC (from 23:00
    # UTC, Uppsala is already on the next day).
    today = today_in(SITES["SE-UPP"]["time_zone"], utcnow())
    with serve(app) as base, chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, locale="en-GB")
        page = context.new_page()
        page.goto(f"{base}/staff/?lang=en")
        page.get_by_label("Email").fill(nurse_with_two_factor)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        assert page.locator("h1").inner_text() == "Sign-in code"
        page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(SECRET).now())
        page.get_by_role("button", name="Sign in").click()
        assert "/staff/login" not in page.url

        page.get_by_role("navigation", name="Staff pages").get_by_role(
            "link", name="Register a patient"
        ).click()
        page.get_by_label("Study ID").fill("UPP-042")
        page.get_by_label("Mobile phone number").fill("070-174 06 42")
        page.get_by_label("Inclusion date").fill(today.isoformat())
        page.get_by_role("button", name="Register the patient").click()
        assert "UPP-042" in page.locator("h1").inner_text()

        page.get_by_role("link", name="Set or change the surgery date").click()
        page.get_by_label("Surgery date").fill((today + timedelta(days=14)).isoformat())
        page.get_by_label("Reason for the change").fill("Surgery booked")
        page.get_by_role("button", name="Save the surgery date").click()
        assert "UPP-042" in page.locator("h1").inner_text()

        # The scheduler's pass opens the baseline window and sends the invitation SMS.
        result = app.test_cli_runner().invoke(args=["jobs", "run", "all"])
        assert result.exit_code == 0, result.output
        page.get_by_role("navigation", name="Staff pages").get_by_role(
            "link", name="Completion board"
        ).click()
        before = _baseline_cell(page)
        assert "Open" in before, before

        link = _open_link(app, "UPP-042")
        phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="en-GB")
        patient_page = phone.new_page()
        patient_page.goto(f"{base}{link}?lang=en")
        _answer_all(patient_page)
        phone.close()

        page.reload()
        after = _baseline_cell(page)
        assert "Completed" in after, after
        context.close()

    status = read(
        app,
        lambda s: s.scalar(
            select(Assessment.status)
            .join(Patient)
            .where(Patient.study_id == "UPP-042", Assessment.timepoint == "baseline")
        ),
    )
    assert status == AssessmentStatus.COMPLETED.value
