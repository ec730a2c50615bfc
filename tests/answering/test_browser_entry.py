"""A nurse enters a paper form in the browser: axe-core finds no WCAG 2.1 AA violation on the
entry page (empty, and with a refused item marked), in Swedish and English, and the saved time
point shows as entered on paper."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import select

from pro_service.models import Assessment

from browser import chromium, serve
from builders import PASSWORD
from pages import read

pytestmark = pytest.mark.browser

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}


def _axe(page, lang):  # type: ignore[no-untyped-def]
    results = Axe().run(page, options=AXE_OPTIONS)
    problems = [
        (v["id"], [n["target"] for n in v["nodes"]]) for v in results.response["violations"]
    ]
    assert not problems, (lang, problems)


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_a_nurse_enters_a_paper_form_and_the_page_passes_axe(app, staff_study, lang):
    patient_id = staff_study.patients["UPP-001"]
    assessment_id = read(
        app,
        lambda s: s.scalar(
            select(Assessment.id).where(
                Assessment.patient_id == patient_id, Assessment.timepoint == "preop"
            )
        ),
    )
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{base}/staff/login?lang={lang}")
        page.locator("#email").fill(staff_study.email("nurse_upp"))
        page.locator("#password").fill(PASSWORD)
        page.locator("button[type=submit]").first.click()
        page.wait_for_url(re.compile(r"/staff/(?!login)"))
        page.goto(f"{base}/staff/assessments/{assessment_id}?lang={lang}")
        page.locator(f"a[href='/staff/assessments/{assessment_id}/enter']").click()
        page.wait_for_url(re.compile(r"/enter"))
        _axe(page, lang)

        page.locator("input[name=mode][value=paper]").check()
        for number in range(1, 57):
            if number == 33:
                continue  # a line the nurse overlooks
            value = "blank" if number == 20 else "2"
            page.locator(f"input[name=q{number}][value='{value}']").check()
        page.locator("button.primary").click()
        page.wait_for_load_state()
        assert page.locator("#q33-errors").count() == 1  # the line left unmarked is named
        _axe(page, lang)

        page.locator("input[name=q33][value='1']").check()
        page.locator("button.primary").click()
        page.wait_for_url(re.compile(rf"/staff/assessments/{assessment_id}$"))
        assert page.locator("a[href$='/enter']").count() == 1  # now: correct the entry
        mode = read(app, lambda s: s.get(Assessment, assessment_id).mode)
        assert mode == "paper"
