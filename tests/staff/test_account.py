"""Your account: details, password change, two-factor sign-in on and off."""

from __future__ import annotations

import json
import re
import time

from sqlalchemy import select

from pro_service.models import AuditEvent, StaffUser

from builders import PASSWORD, TOTP_SECRETS
from pages import csrf_of, read, sign_in_with_password, totp_code

NEW_PASSWORD = "a much longer new passphrase"


def _account(client):
    return client.get("/staff/account?lang=en")


def _change(client, current, new, repeat=None, *, csrf=True):
    data = {
        "current_password": current,
        "new_password": new,
        "repeat_password": new if repeat is None else repeat,
    }
    if csrf:
        data["csrf_token"] = csrf_of(_account(client).text)
    return client.post("/staff/account/password", data=data)


def _errors_of(html, field):
    match = re.search(rf'<ul class="errors" id="{field}-errors">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def test_the_account_page_shows_who_you_are(sign_in):
    page = _account(sign_in("nurse_upp"))
    assert page.status_code == 200
    assert "anna.nurse@upp.example.org" in page.text
    assert "Research nurse" in page.text
    assert "Uppsala" in page.text
    assert "Helsinki" not in page.text
    assert re.search(r"<dt>Two-factor sign-in</dt>\s*<dd>Off</dd>", page.text)
    admin = _account(sign_in("admin"))
    assert "Administrator" in admin.text
    assert "All sites" in admin.text
    assert re.search(r"<dt>Two-factor sign-in</dt>\s*<dd>On</dd>", admin.text)
    assert "Administrators must keep it on." in admin.text


def test_the_account_page_needs_a_sign_in(client, staff_study):
    assert client.get("/staff/account").headers["Location"].startswith("/staff/login")


def test_a_password_change_ends_other_sessions_and_the_old_password(app, sign_in, staff_study):
    here = sign_in("nurse_upp")
    elsewhere = sign_in("nurse_upp")
    assert _account(elsewhere).status_code == 200

    response = _change(here, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/account"
    page = here.get("/staff/account?lang=en")
    assert page.status_code == 200  # this browser stays signed in
    assert "You were signed out everywhere else." in page.text
    assert elsewhere.get("/staff/account").headers["Location"].startswith("/staff/login")

    old = sign_in_with_password(app.test_client(), staff_study.email("nurse_upp"))
    assert "The email or the password is not right." in old.text
    new = sign_in_with_password(app.test_client(), staff_study.email("nurse_upp"), NEW_PASSWORD)
    assert new.status_code == 302

    changed_at, password_hash = read(
        app,
        lambda s: s.execute(
            select(StaffUser.password_changed_at, StaffUser.password_hash).where(
                StaffUser.id == staff_study.users["nurse_upp"]
            )
        ).one(),
    )
    assert changed_at is not None
    assert password_hash.startswith("$argon2id$")
    events = read(
        app,
        lambda s: [
            (e.actor_id, e.object_id, json.dumps(e.after))
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "staff.password_changed")
            )
        ],
    )
    uid = str(staff_study.users["nurse_upp"])
    assert events == [(uid, uid, json.dumps({"other_sessions_ended": 1}))]
    assert PASSWORD not in events[0][2]
    assert NEW_PASSWORD not in events[0][2]


def test_password_change_errors_name_the_field_and_change_nothing(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    other = sign_in("nurse_upp")
    cases = [
        (
            "wrong current password",
            NEW_PASSWORD,
            None,
            "current_password",
            "The current password is not right.",
        ),
        (
            PASSWORD,
            "too short",
            None,
            "new_password",
            "Choose a password of at least 12 characters.",
        ),
        (
            PASSWORD,
            "1234567890ab",
            None,
            "new_password",
            "This password is on the list of common and breached passwords",
        ),
        (
            PASSWORD,
            "AnnaNurse2026",
            None,
            "new_password",
            "This password is easy to guess",
        ),
        (PASSWORD, "x" * 257, None, "new_password", "at most 256 characters"),
        (
            PASSWORD,
            NEW_PASSWORD,
            NEW_PASSWORD + "!",
            "repeat_password",
            "The two new passwords are not the same.",
        ),
        (
            PASSWORD,
            PASSWORD,
            None,
            "new_password",
            "The new password must differ from the current one.",
        ),
        ("", NEW_PASSWORD, None, "current_password", "This field is required."),
    ]
    for current, new, repeat, field, message in cases:
        response = _change(client, current, new, repeat)
        assert response.status_code == 400, field
        assert message in _errors_of(response.text, field), (field, message)
        assert 'aria-invalid="true"' in response.text
    # nothing was saved: the old password still works, the other session lives on
    assert _account(other).status_code == 200
    assert (
        sign_in_with_password(app.test_client(), staff_study.email("nurse_upp")).status_code == 302
    )
    assert (
        read(app, lambda s: s.get(StaffUser, staff_study.users["nurse_upp"]).password_changed_at)
        is None
    )
    failed = read(
        app,
        lambda s: [
            e.after["step"]
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "staff.sign_in_failed")
            )
        ],
    )
    assert failed == ["current_password"]


def test_password_change_without_csrf_token_is_refused(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    assert _change(client, PASSWORD, NEW_PASSWORD, csrf=False).status_code == 400
    assert (
        read(app, lambda s: s.get(StaffUser, staff_study.users["nurse_upp"]).password_changed_at)
        is None
    )


def test_a_nurse_turns_two_factor_sign_in_on_and_off(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    page = client.get("/staff/account/two-factor?lang=en")
    assert page.status_code == 200
    assert 'src="data:image/svg+xml' in page.text
    secret = re.search(r'<code class="totp-secret">([A-Z2-7 ]+)</code>', page.text).group(1)
    secret = secret.replace(" ", "")
    step = int(time.time()) // 30
    enrolled = client.post(
        "/staff/account/two-factor",
        data={"code": totp_code(secret, step), "csrf_token": csrf_of(page.text)},
    )
    assert enrolled.headers["Location"] == "/staff/account"
    assert re.search(r"<dt>Two-factor sign-in</dt>\s*<dd>On</dd>", _account(client).text)

    # from now on, signing in asks for a code
    other = app.test_client()
    assert (
        sign_in_with_password(other, staff_study.email("nurse_upp")).headers["Location"]
        == "/staff/login/code"
    )

    # turning it off needs a current, unused code: the one that confirmed it is used up
    used = client.post(
        "/staff/account/two-factor/disable",
        data={"code": totp_code(secret, step), "csrf_token": csrf_of(_account(client).text)},
    )
    assert used.status_code == 400
    assert "The code is not right." in _errors_of(used.text, "code")
    off = client.post(
        "/staff/account/two-factor/disable",
        data={"code": totp_code(secret, step + 1), "csrf_token": csrf_of(_account(client).text)},
    )
    assert off.status_code == 302
    assert re.search(r"<dt>Two-factor sign-in</dt>\s*<dd>Off</dd>", _account(client).text)
    actions = read(
        app,
        lambda s: list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("staff.two_factor_%"))
                .order_by(AuditEvent.id)
            )
        ),
    )
    assert actions == ["staff.two_factor_enabled", "staff.two_factor_disabled"]


def test_an_admin_cannot_turn_two_factor_sign_in_off(app, sign_in, staff_study):
    client = sign_in("admin")
    page = _account(client)
    assert "/staff/account/two-factor/disable" not in page.text
    step = int(time.time()) // 30 + 1
    refused = client.post(
        "/staff/account/two-factor/disable",
        data={"code": totp_code(TOTP_SECRETS["admin"], step), "csrf_token": csrf_of(page.text)},
    )
    assert refused.status_code == 400
    assert "Administrators must keep two-factor sign-in." in refused.text
    assert (
        read(app, lambda s: s.get(StaffUser, staff_study.users["admin"]).totp_secret_encrypted)
        is not None
    )
