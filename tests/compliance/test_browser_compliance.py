"""axe-core finds no WCAG 2.1 AA violation on the compliance page (tables and chart), in
Swedish and English."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe

from browser import chromium, serve
from builders import PASSWORD

pytestmark = pytest.mark.browser

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_the_compliance_page_passes_axe(app, staff_study, lang):
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{base}/staff/login?lang={lang}")
        page.locator("#email").fill(staff_study.email("investigator"))
        page.locator("#password").fill(PASSWORD)
        page.locator("button[type=submit]").first.click()
        page.wait_for_url(re.compile(r"/staff/(?!login)"))
        page.goto(f"{base}/staff/compliance?lang={lang}")
        assert page.locator("svg[role=img]").count() == 1
        assert page.locator("table.compliance-table").count() == 3  # two sites and the total
        results = Axe().run(page, options=AXE_OPTIONS)
        problems = [
            (v["id"], [n["target"] for n in v["nodes"]]) for v in results.response["violations"]
        ]
        assert not problems, (lang, problems)
