"""An administrator in Chromium, in Swedish and English: creates an account, hands over the
set-password link, the colleague sets a password and signs in, and deactivation ends the
colleague's live session. axe-core finds no WCAG 2.1 AA violation on any administration page."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from babel.support import Translations

from pro_service.extensions import db
from pro_service.models import StaffUser

from browser import chromium, serve
from builders import PASSWORD, TOTP_SECRETS

pytestmark = pytest.mark.browser

TRANSLATIONS = Path(__file__).resolve().parents[2] / "translations"
LOCALES = {"sv": "sv-SE", "en": "en-GB"}
DESKTOP = {"width": 1280, "height": 900}
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
NEW_EMAIL = "cecilia.nurse@upp.example.org"
NEW_PASSWORD = "lingonberry ferry at dusk"


def _words(lang: str):  # type: ignore[no-untyped-def]
    """The pages' own words in ``lang`` (the catalogs the app uses), so the test reads the page
    as a Swedish admin does."""
    if lang == "en":
        return lambda text, **params: text % params if params else text
    catalog = Translations.load(str(TRANSLATIONS), [lang])
    return lambda text, **params: (
        catalog.gettext(text) % params if params else catalog.gettext(text)
    )


def _speaks(app, staff_study, lang: str) -> None:  # type: ignore[no-untyped-def]
    """The admin's account language: the staff pages speak it from the password step on."""
    with app.app_context():
        db.session.get(StaffUser, staff_study.users["admin"]).language = lang
        db.session.commit()


def _sign_in_admin(page, base: str, email: str, lang: str, t) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/staff/login?lang={lang}")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name=t("Sign in")).click()
    page.wait_for_url(re.compile(r"/staff/login/code"))
    page.locator("#code").fill(pyotp.TOTP(TOTP_SECRETS["admin"]).now())
    page.get_by_role("button", name=t("Sign in")).click()
    page.wait_for_url(re.compile(r"/staff/(?!login)"))


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_an_admin_creates_an_account_hands_over_the_link_and_deactivates_it(app, staff_study, lang):
    t = _words(lang)
    _speaks(app, staff_study, lang)
    with serve(app) as base, chromium() as browser:
        admin = browser.new_context(viewport=DESKTOP, locale=LOCALES[lang]).new_page()
        _sign_in_admin(admin, base, staff_study.email("admin"), lang, t)
        nav = admin.get_by_role("navigation", name=t("Staff pages"))
        nav.get_by_role("link", name=t("Staff"), exact=True).click()
        admin.wait_for_url(re.compile(r"/staff/admin/users$"))
        admin.get_by_role("link", name=t("Create an account")).click()
        admin.wait_for_url(re.compile(r"/staff/admin/users/new$"))
        admin.locator("#email").fill(NEW_EMAIL)
        admin.locator("#display_name").fill("Cecilia")
        admin.locator("#role").select_option("nurse")
        admin.get_by_label(re.compile(r"SE-UPP –")).check()
        admin.locator("#language").select_option(lang)
        admin.get_by_role("button", name=t("Create the account")).click()
        admin.wait_for_load_state()
        heading = t("The account %(email)s is created", email=NEW_EMAIL)
        assert admin.locator("h1").inner_text() == heading
        shown = admin.get_by_label(t("Set-password link")).input_value()
        assert shown.startswith("https://pro.example.test/staff/set-password/")
        link = base + shown.removeprefix("https://pro.example.test")  # this test's server

        # The colleague opens the link on their own computer and sets a password.
        colleague = browser.new_context(viewport=DESKTOP, locale=LOCALES[lang]).new_page()
        colleague.goto(f"{link}?lang={lang}")
        assert colleague.locator("h1").inner_text() == t("Set your password")
        colleague.locator("#password").fill("Password1234")
        colleague.locator("#repeat_password").fill("Password1234")
        colleague.get_by_role("button", name=t("Set the password")).click()
        colleague.wait_for_load_state()
        common = t(
            "This password is on the list of common and breached passwords that attackers try "
            "first. Choose another, for example a few unrelated words."
        )
        assert common in colleague.locator("#password-errors").inner_text()
        colleague.locator("#password").fill(NEW_PASSWORD)
        colleague.locator("#repeat_password").fill(NEW_PASSWORD)
        colleague.get_by_role("button", name=t("Set the password")).click()
        colleague.wait_for_url(re.compile(r"/staff/login"))
        assert t("Your password is set. Sign in with it now.") in colleague.content()
        colleague.locator("#email").fill(NEW_EMAIL)
        colleague.locator("#password").fill(NEW_PASSWORD)
        colleague.get_by_role("button", name=t("Sign in")).click()
        colleague.wait_for_url(re.compile(r"/staff/board"))

        # The admin deactivates the account: the colleague's open session ends at once.
        admin.get_by_role("link", name=t("Back to the account")).click()
        admin.wait_for_url(re.compile(r"/staff/admin/users/\d+$"))
        admin.get_by_role("button", name=t("Deactivate the account")).click()
        admin.wait_for_load_state()
        done = t("%(email)s is deactivated; %(num)d session(s) ended.", email=NEW_EMAIL, num=1)
        assert done in admin.locator(".flash").inner_text()
        colleague.reload()
        colleague.wait_for_url(re.compile(r"/staff/login"))
        # And the used link is dead.
        colleague.goto(f"{link}?lang={lang}")
        used = t(
            "This link has already been used, or a newer link replaced it. Ask an "
            "administrator for a new one if you still need to set your password."
        )
        assert used in colleague.locator(".flash-error").inner_text()


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_every_administration_page_passes_axe(app, staff_study, lang):
    t = _words(lang)
    _speaks(app, staff_study, lang)
    axe = Axe()
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(viewport=DESKTOP, locale=LOCALES[lang]).new_page()
        _sign_in_admin(page, base, staff_study.email("admin"), lang, t)
        nurse = staff_study.users["nurse_upp"]
        site = staff_study.sites["SE-UPP"]
        checked = []

        def check(name: str) -> None:
            results = axe.run(page, options=AXE_OPTIONS)
            problems = [
                (v["id"], [n["target"] for n in v["nodes"]]) for v in results.response["violations"]
            ]
            assert not problems, (lang, name, problems)
            checked.append(name)

        for name, path in (
            ("accounts", "/staff/admin/users"),
            ("new account", "/staff/admin/users/new"),
            ("account", f"/staff/admin/users/{nurse}"),
            ("sites", "/staff/admin/sites"),
            ("new site", "/staff/admin/sites/new"),
            ("site", f"/staff/admin/sites/{site}"),
        ):
            page.goto(f"{base}{path}?lang={lang}")
            check(name)
        # A form with its errors shown.
        page.goto(f"{base}/staff/admin/sites/new?lang={lang}")
        page.locator("#code").fill("SE-UPP")
        page.locator("#name").fill("Again")
        page.locator("#country").fill("SE")
        page.locator("#time_zone").fill("Mars/Olympus")
        page.get_by_role("button", name=t("Create the site")).click()
        page.wait_for_load_state()
        assert page.locator("#code-errors").is_visible()
        check("site form with errors")
        # The link page, and the set-password page it leads to.
        page.goto(f"{base}/staff/admin/users/{nurse}?lang={lang}")
        page.get_by_role("button", name=t("Make a set-password link")).click()
        page.wait_for_load_state()
        check("link")
        link = base + page.get_by_label(t("Set-password link")).input_value().split(".test", 1)[1]
        other = browser.new_context(viewport=DESKTOP, locale=LOCALES[lang]).new_page()
        other.goto(f"{link}?lang={lang}")
        results = axe.run(other, options=AXE_OPTIONS)
        assert not results.response["violations"], (lang, "set password")
        assert len(checked) == 8
