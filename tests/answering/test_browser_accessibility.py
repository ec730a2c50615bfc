"""axe-core finds no WCAG 2.1 AA violation on any patient page, in Swedish, Finnish and English.

Each page is also checked on a 320 px wide phone and at 200 % text size: nothing needs sideways
scrolling, and every tap target is at least 48 px high.
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from pro_service import create_app
from pro_service.clock import utcnow
from pro_service.web.patient import hooks

from browser import chromium, serve
from pages import csrf_of

pytestmark = pytest.mark.browser

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
LOCALES = {"sv": "sv-SE", "fi": "fi-FI", "en": "en-GB"}
TARGETS = "label.option, .button, .languages a, .missing a"


def _pages(app, make_link, lang: str) -> list[tuple[str, str]]:
    """(name, path) of every kind of patient page, set up through the app's own forms."""
    open_link = make_link(language=lang)
    partly = make_link(language=lang)
    done = make_link(language=lang)
    client = app.test_client()
    # partly: one answer given, so the review lists missing items
    html = client.get(partly.screen(1)).get_data(as_text=True)
    client.post(partly.screen(1), data={"csrf_token": csrf_of(html), "screen": "1", "q1": "2"})
    return [
        ("welcome", open_link.url),
        ("four-point screen", open_link.screen(1)),
        ("seven-point screen", open_link.screen(8)),
        ("review with missing answers", f"{partly.url}/review"),
        ("stop messages", f"{open_link.url}/stop"),
        ("unknown link", "/q/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("unknown screen", open_link.screen(99)),
        ("done", done.url),
    ]


BROKEN_NUMBER_RUNS = """() => {
  const broken = [];
  for (const el of document.querySelectorAll('h1, h2, h3, #progress-label')) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\d+\\s?[\u2013\\-\\/]\\s?\\d+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(m[0] + ' in ' + el.textContent.trim());
      }
    }
  }
  return broken;
}"""


def _check_layout(page, name: str) -> list[str]:
    problems = [f"{name}: {run} breaks across lines" for run in page.evaluate(BROKEN_NUMBER_RUNS)]
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 0:
        problems.append(f"{name}: {overflow}px sideways scrolling")
    for box in page.eval_on_selector_all(
        TARGETS, "els => els.map(e => [e.textContent.trim(), e.getBoundingClientRect().height])"
    ):
        if box[1] < 47.5:
            problems.append(f"{name}: target {box[0]!r} is {box[1]:.0f}px high")
    return problems


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lang", ["sv", "fi", "en"])
def test_every_patient_page_passes_axe_at_320px_and_200_percent_text(app, make_link, lang):
    pages = _pages(app, make_link, lang)
    axe = Axe()
    problems: list[str] = []
    with serve(app) as base, chromium() as browser:
        context = browser.new_context(viewport={"width": 320, "height": 640}, locale=LOCALES[lang])
        page = context.new_page()

        def visit(name: str, path: str, status: int | None = None) -> None:
            response = page.goto(base + path)
            assert page.locator("html").get_attribute("lang") == lang, name
            if status is not None:
                assert response.status == status, name
            results = axe.run(page, options=AXE_OPTIONS)
            for violation in results.response["violations"]:
                problems.append(f"{name}: {violation['id']}: {violation['help']}")
            problems.extend(_check_layout(page, name))
            page.evaluate("document.documentElement.style.fontSize = '200%'")
            problems.extend(_check_layout(page, f"{name} at 200%"))

        for name, path in pages[:-1]:
            visit(name, path)
        # Submit the last link in the browser to reach the thank-you and "stopped" pages.
        page.goto(base + pages[-1][1] + "/review")
        page.locator("button[type=submit]").click()
        visit("thank you", pages[-1][1] + "/thanks", 200)
        page.locator(".button.secondary").click()
        page.locator("button[type=submit]").click()
        visit("messages stopped", pages[-1][1] + "/stopped", 200)
        # The used link again, as another browser opens it: "your answers were received".
        context.clear_cookies()
        visit("answers received", pages[-1][1], 200)
        assert page.locator("h1").count() == 1
        context.close()
    assert problems == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_busy_page_passes_axe(app_overrides, monkeypatch):
    held = utcnow().replace(second=30, microsecond=0)  # both look-ups in one minute's window
    monkeypatch.setattr(hooks, "utcnow", lambda: held)
    app = create_app({**app_overrides, "link_rate_limit": 1})
    problems = []
    with serve(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 320, "height": 640})
        page.goto(base + "/q/AAAAAAAAAAAAAAAAAAAAAAAAA?lang=fi")
        response = page.goto(base + "/q/AAAAAAAAAAAAAAAAAAAAAAAAA")
        assert response.status == 429
        results = Axe().run(page, options=AXE_OPTIONS)
        problems = [v["id"] for v in results.response["violations"]]
        problems.extend(_check_layout(page, "busy"))
    app.extensions["pro_db"]["engine"].dispose()
    assert problems == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_number_ranges_in_headings_never_break_across_lines(app, make_link):
    """The Finnish 7-point heading broke as "1–" / "7" on some phone widths; every width from
    320 px up, at normal and double text size, in every language, keeps a range on one line."""
    links = {lang: make_link(language=lang) for lang in LOCALES}
    broken: list[str] = []
    with serve(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 320, "height": 640})
        for lang, link in links.items():
            for width in range(320, 431, 10):
                page.set_viewport_size({"width": width, "height": 640})
                for number in (1, 8):
                    page.goto(base + link.screen(number))
                    for size in ("100%", "200%"):
                        page.evaluate(f"document.documentElement.style.fontSize = '{size}'")
                        broken += [
                            f"{lang} {width}px {size}: {run}"
                            for run in page.evaluate(BROKEN_NUMBER_RUNS)
                        ]
    app.extensions["pro_db"]["engine"].dispose()
    assert broken == []
