"""One base layout: patient and staff pages share the same head, each with its own stylesheet."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "pro_service" / "templates"
SHARED_HEAD = (
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    '<meta name="robots" content="noindex, nofollow">',
)


def _head(html: str) -> str:
    match = re.search(r"<head>(.*?)</head>", html, re.S)
    assert match, "the page has no head"
    assert html.count("<head>") == 1
    return match.group(1)


def test_patient_and_staff_pages_share_one_head(client, link):
    staff = client.get("/staff/login?lang=sv").text
    patient = client.get(link.url).text
    for html, stylesheet, site in (
        (staff, "/static/staff/staff.css", "PRO Service – personal"),
        (patient, "/static/patient/patient.css", "Hälsoenkät"),
    ):
        head = _head(html)
        for line in SHARED_HEAD:
            assert head.count(line) == 1, line
        assert f'<link rel="stylesheet" href="{stylesheet}">' in head
        assert re.search(rf"<title>.+ – {site}</title>", head), head
        assert html.count('class="skip-link"') == 1


def test_only_the_base_layout_writes_a_head():
    with_head = sorted(
        str(p.relative_to(TEMPLATES))
        for p in TEMPLATES.rglob("*.html")
        if "<head>" in p.read_text()
    )
    # The development outbox is a plain page outside both audiences.
    assert with_head == ["base.html", "dev/outbox.html"]
