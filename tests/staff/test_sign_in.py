"""Signing in and out of the staff pages."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
import time_machine
from argon2 import PasswordHasher
from sqlalchemy import select

from pro_service import create_app
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import AuditEvent, StaffSession, StaffUser
from pro_service.staff import sign_in
from pro_service.staff.accounts import password_hasher

from builders import PASSWORD, TOTP_SECRETS
from pages import csrf_of, read, sign_in_with_password, totp_code


def test_staff_pages_need_a_sign_in(client, staff_study):
    response = client.get("/staff/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login")
    assert client.get("/").headers["Location"] == "/staff/"


def test_a_nurse_signs_in_and_out(app, client, staff_study):
    response = sign_in_with_password(client, "Anna.Nurse@upp.example.org ")
    assert response.status_code == 302
    home = client.get("/staff/", follow_redirects=True)
    assert home.status_code == 200
    assert "anna.nurse@upp.example.org" in home.text
    assert home.headers["Cache-Control"] == "no-store"

    logout = client.post("/staff/logout", data={"csrf_token": csrf_of(home.text)})
    assert logout.status_code == 302, logout.text
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    actions = read(
        app, lambda s: list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    )
    assert actions[-2:] == ["staff.signed_in", "staff.signed_out"]


def test_a_wrong_password_names_no_detail_and_signs_nobody_in(client, staff_study):
    response = sign_in_with_password(client, "anna.nurse@upp.example.org", "wrong password!!")
    assert response.status_code == 200
    assert "The email or the password is not right." in response.text
    assert client.get("/staff/").status_code == 302
    unknown = sign_in_with_password(client, "nobody@example.org", "wrong password!!")
    assert "The email or the password is not right." in unknown.text


def test_sign_in_without_csrf_token_is_refused(client, staff_study):
    response = client.post(
        "/staff/login",
        data={"email": "anna.nurse@upp.example.org", "password": "correct horse battery staple"},
    )
    assert response.status_code == 400
    assert client.get("/staff/").status_code == 302


def test_an_idle_session_ends(app, sign_in):
    client = sign_in("nurse_upp")
    assert client.get("/staff/", follow_redirects=True).status_code == 200
    idle = app.config["PRO_SETTINGS"].staff_idle_minutes
    with time_machine.travel(utcnow() + timedelta(minutes=idle + 1), tick=False):
        response = client.get("/staff/")
        assert response.headers["Location"].startswith("/staff/login")
    # and the session stays ended, even back in the present
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    ended = read(app, lambda s: s.scalars(select(StaffSession.ended_at)).all())
    assert all(e is not None for e in ended)


def test_a_signed_out_cookie_cannot_be_replayed(app, sign_in):
    client = sign_in("nurse_upp")
    home = client.get("/staff/", follow_redirects=True)
    with client.session_transaction() as stored:
        cookie = dict(stored)
    client.post("/staff/logout", data={"csrf_token": csrf_of(home.text)})
    other = app.test_client()
    with other.session_transaction() as stored:
        stored.update(cookie)
    assert other.get("/staff/").headers["Location"].startswith("/staff/login")


def test_staff_pages_follow_the_language_switch(sign_in):
    client = sign_in("nurse_upp")
    home = client.get("/staff/", follow_redirects=True)
    assert '<html lang="en">' in home.text  # the user's own language
    page = client.get("/staff/?lang=fi", follow_redirects=True)
    assert '<html lang="fi">' in page.text
    assert '<html lang="fi">' in client.get("/staff/", follow_redirects=True).text


# --- Throttling ---------------------------------------------------------------------------------

THROTTLED = "Too many failed attempts. Please wait"


def _actions(app, action):
    return read(
        app,
        lambda s: [
            (e.object_id, e.actor_type, e.after)
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action))
        ],
    )


def test_failed_sign_ins_are_throttled_per_account_across_app_instances(
    app, app_overrides, staff_study
):
    first = app.test_client()
    for _ in range(sign_in.ACCOUNT_LIMIT.requests):
        response = sign_in_with_password(first, "anna.nurse@upp.example.org", "wrong password!!")
        assert "The email or the password is not right." in response.text
    # a second app (another web worker) shares the count through the database
    other_app = create_app(app_overrides)
    try:
        second = other_app.test_client()
        refused = sign_in_with_password(second, "Anna.Nurse@upp.example.org")  # right password
        assert refused.status_code == 429
        assert THROTTLED in refused.text
        assert second.get("/staff/").status_code == 302
        # another account from the same address still signs in, and that resets nothing
        assert sign_in_with_password(second, "bo.nurse@upp.example.org").status_code == 302
        assert (
            sign_in_with_password(app.test_client(), staff_study.email("nurse_upp")).status_code
            == 429
        )
    finally:
        other_app.extensions["pro_db"]["engine"].dispose()

    failed = _actions(app, "staff.sign_in_failed")
    assert len(failed) == sign_in.ACCOUNT_LIMIT.requests
    assert {object_id for object_id, _, _ in failed} == {str(staff_study.users["nurse_upp"])}
    throttled = _actions(app, "staff.sign_in_throttled")
    assert [object_id for object_id, _, _ in throttled] == [str(staff_study.users["nurse_upp"])] * 2

    # once the window has passed, the right password works again
    later = utcnow() + timedelta(seconds=sign_in.ACCOUNT_LIMIT.window_seconds + 1)
    with time_machine.travel(later, tick=False):
        assert (
            sign_in_with_password(app.test_client(), staff_study.email("nurse_upp")).status_code
            == 302
        )


def test_unknown_emails_are_throttled_alike_and_not_stored(app, staff_study):
    client = app.test_client()
    for _ in range(sign_in.ACCOUNT_LIMIT.requests):
        response = sign_in_with_password(client, "nobody@example.org", "guess number one")
        assert "The email or the password is not right." in response.text
    refused = sign_in_with_password(client, "Nobody@example.org", "guess number two")
    assert refused.status_code == 429
    assert THROTTLED in refused.text

    events = read(
        app,
        lambda s: [
            (e.action, e.actor_type, e.object_id, json.dumps(e.after))
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("staff.sign_in_%")))
        ],
    )
    assert len(events) == sign_in.ACCOUNT_LIMIT.requests + 1
    for _action, actor_type, object_id, after in events:
        assert actor_type == "anonymous"
        assert object_id is None
        assert "nobody" not in after.lower()
        assert "guess" not in after
        assert "127.0.0.1" not in after


def _client_at(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_failures_from_a_shared_address_slow_it_down_but_never_lock_colleagues_out(
    app, staff_study, monkeypatch
):
    """A hospital's staff share one address: someone's guessing there must not lock them out."""
    import pro_service.web.staff.auth as auth_views

    waits: list[float] = []
    monkeypatch.setattr(auth_views.time, "sleep", waits.append)
    guesses = sign_in.ADDRESS_SLOW_AFTER + 4
    attacker = _client_at(app, "203.0.113.9")
    for number in range(guesses):  # a new account each time: no account lock helps here
        response = sign_in_with_password(attacker, f"someone{number}@example.org", "wrong!!!!")
        assert response.status_code == 200
    assert waits == [sign_in.address_delay(n) for n in range(sign_in.ADDRESS_SLOW_AFTER, guesses)]
    assert waits == sorted(waits) and 0 < waits[0] <= waits[-1] <= sign_in.ADDRESS_MAX_DELAY_SECONDS
    colleague = _client_at(app, "203.0.113.9")  # the same hospital address
    assert sign_in_with_password(colleague, staff_study.email("nurse_hel")).status_code == 302
    assert waits[-1] == sign_in.address_delay(guesses)  # slowed down, not refused
    elsewhere = _client_at(app, "198.51.100.7")
    waits.clear()
    assert sign_in_with_password(elsewhere, staff_study.email("nurse_upp")).status_code == 302
    assert waits == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # real concurrency
def test_a_parallel_burst_of_wrong_passwords_reaches_the_check_at_most_the_limit(app, staff_study):
    from concurrent.futures import ThreadPoolExecutor

    email = staff_study.email("nurse_upp")
    clients = [app.test_client() for _ in range(20)]
    pages = [client.get("/staff/login?lang=en") for client in clients]

    def attempt(n: int) -> int:
        return (
            clients[n]
            .post(
                "/staff/login",
                data={
                    "email": email,
                    "password": "a wrong password",
                    "csrf_token": csrf_of(pages[n].text),
                },
            )
            .status_code
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    actions = read(
        app,
        lambda s: [
            e.action
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("staff.sign_in_%")))
        ],
    )
    assert actions.count("staff.sign_in_failed") == sign_in.ACCOUNT_LIMIT.requests
    assert actions.count("staff.sign_in_throttled") == 20 - sign_in.ACCOUNT_LIMIT.requests
    assert sorted(statuses) == [200] * 5 + [429] * 15


def test_a_right_current_password_gives_its_count_back(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    for n in range(6):  # more changes than the account limit of attempts
        new = f"a new long password {n}"
        old = PASSWORD if n == 0 else f"a new long password {n - 1}"
        page = client.get("/staff/account?lang=en")
        response = client.post(
            "/staff/account/password",
            data={
                "current_password": old,
                "new_password": new,
                "repeat_password": new,
                "csrf_token": csrf_of(page.text),
            },
        )
        assert response.status_code == 302, (n, response.status_code)


def test_an_outdated_password_hash_is_upgraded_at_sign_in(app, client, staff_study):
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    user_id = staff_study.users["nurse_upp"]
    with app.app_context():
        db.session.get(StaffUser, user_id).password_hash = old.hash(PASSWORD)
        db.session.commit()
    assert sign_in_with_password(client, staff_study.email("nurse_upp")).status_code == 302
    upgraded = read(app, lambda s: s.get(StaffUser, user_id).password_hash)
    assert not password_hasher.check_needs_rehash(upgraded)
    assert "m=8192," not in upgraded
    password_hasher.verify(upgraded, PASSWORD)


def test_production_names_the_cookie_for_this_host_only(app_overrides, staff_study):
    production = create_app({**app_overrides, "env": "production"})
    try:
        page = production.test_client().get("/staff/login")
        cookie = page.headers["Set-Cookie"]
        assert cookie.startswith("__Host-session=")
        assert "Secure" in cookie
        assert "Path=/;" in cookie
        assert "Domain" not in cookie
    finally:
        production.extensions["pro_db"]["engine"].dispose()


# --- Two-factor sign-in --------------------------------------------------------------------------


def _code_page(client):
    return client.get("/staff/login/code?lang=en")


def _post_code(client, code):
    return client.post(
        "/staff/login/code", data={"code": code, "csrf_token": csrf_of(_code_page(client).text)}
    )


def test_an_admin_signs_in_with_password_and_code(app, client, staff_study):
    response = sign_in_with_password(client, staff_study.email("admin"))
    assert response.headers["Location"] == "/staff/login/code"
    # the password alone reaches no page
    assert client.get("/staff/account").headers["Location"] == "/staff/login/code"
    assert read(app, lambda s: s.scalars(select(StaffSession.verified)).all()) == [False]

    step = int(time.time()) // 30
    signed_in = _post_code(client, totp_code(TOTP_SECRETS["admin"], step))
    assert signed_in.status_code == 302
    assert "/staff/login" not in signed_in.headers["Location"]
    assert client.get("/staff/account").status_code == 200
    assert read(app, lambda s: s.scalars(select(StaffSession.verified)).all()) == [True]

    # the same code, at once, in another browser that knows the password: refused
    thief = app.test_client()
    assert sign_in_with_password(thief, staff_study.email("admin")).status_code == 302
    replayed = _post_code(thief, totp_code(TOTP_SECRETS["admin"], step))
    assert replayed.status_code == 200
    assert "The code is not right." in replayed.text
    assert 'id="code-errors"' in replayed.text
    assert thief.get("/staff/account").headers["Location"] == "/staff/login/code"
    # and an older code within the drift is refused too: only later steps count
    assert (
        "The code is not right."
        in _post_code(thief, totp_code(TOTP_SECRETS["admin"], step - 1)).text
    )


def test_a_code_one_step_off_is_accepted(app, client, staff_study):
    sign_in_with_password(client, staff_study.email("admin"))
    step = int(time.time()) // 30
    assert _post_code(client, totp_code(TOTP_SECRETS["admin"], step + 1)).status_code == 302


def test_wrong_codes_are_refused_and_throttled(app, client, staff_study):
    sign_in_with_password(client, staff_study.email("admin"))
    step = int(time.time()) // 30
    wrong = totp_code(TOTP_SECRETS["admin"], step + 5)
    for _ in range(sign_in.ACCOUNT_LIMIT.requests):
        response = _post_code(client, wrong)
        assert "The code is not right." in response.text
    refused = _post_code(client, totp_code(TOTP_SECRETS["admin"], step))
    assert refused.status_code == 429
    assert THROTTLED in refused.text
    assert client.get("/staff/account").headers["Location"] == "/staff/login/code"
    failed = _actions(app, "staff.sign_in_failed")
    assert [(object_id, after["step"]) for object_id, _, after in failed] == [
        (str(staff_study.users["admin"]), "code")
    ] * sign_in.ACCOUNT_LIMIT.requests
    # the password is throttled as well now
    assert sign_in_with_password(app.test_client(), staff_study.email("admin")).status_code == 429


def test_an_admin_without_two_factor_must_enrol_before_any_page(app, client, staff_study):
    admin_id = staff_study.users["admin"]
    with app.app_context():
        db.session.get(StaffUser, admin_id).totp_secret_encrypted = None
        db.session.commit()
    response = sign_in_with_password(client, staff_study.email("admin"))
    assert response.headers["Location"] == "/staff/account/two-factor"
    assert client.get("/staff/account").headers["Location"] == "/staff/account/two-factor"
    assert client.get("/staff/", follow_redirects=True).request.path == "/staff/login"

    page = client.get("/staff/account/two-factor?lang=en")
    assert page.status_code == 200
    secret = _secret_on(page.text)
    assert 'src="data:image/svg+xml' in page.text
    assert _secret_on(client.get("/staff/account/two-factor").text) == secret  # stable on reload

    wrong = client.post(
        "/staff/account/two-factor",
        data={
            "code": "000000" if totp_code(secret, int(time.time()) // 30) != "000000" else "111111",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert wrong.status_code == 400
    assert 'id="code-errors"' in wrong.text
    assert read(app, lambda s: s.get(StaffUser, admin_id).totp_secret_encrypted) is None

    done = client.post(
        "/staff/account/two-factor",
        data={"code": totp_code(secret, int(time.time()) // 30), "csrf_token": csrf_of(page.text)},
    )
    assert done.status_code == 302
    assert "/staff/login" not in done.headers["Location"]
    assert client.get("/staff/account").status_code == 200
    stored = read(app, lambda s: s.get(StaffUser, admin_id).totp_secret_encrypted)
    assert stored is not None
    assert secret.encode() not in stored
    assert app.extensions["vault"].decrypt(stored) == secret
    assert [a for _, a, _ in _actions(app, "staff.two_factor_enabled")] == ["staff"]


def test_a_verified_admin_without_two_factor_is_sent_to_enrol(app, sign_in, staff_study):
    client = sign_in("admin")
    with app.app_context():
        db.session.get(StaffUser, staff_study.users["admin"]).totp_secret_encrypted = None
        db.session.commit()
    assert client.get("/staff/account").headers["Location"] == "/staff/account/two-factor"


def test_the_sign_in_fixture_signs_the_admin_in_again_and_again(sign_in):
    for _ in range(4):  # more sign-ins than unused time steps within the drift
        assert sign_in("admin").get("/staff/account").status_code == 200


def test_a_pending_sign_in_can_be_cancelled(app, client, staff_study):
    sign_in_with_password(client, staff_study.email("admin"))
    page = _code_page(client)
    assert client.post("/staff/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 302
    assert client.get("/staff/login/code").headers["Location"] == "/staff/login"


def _secret_on(html):
    match = re.search(r'<code class="totp-secret">([A-Z2-7 ]+)</code>', html)
    assert match, "no secret on the page"
    return match.group(1).replace(" ", "")


def test_a_nurse_who_keeps_reading_pages_stays_signed_in(app, sign_in):
    """Idle means no request: reading the board now and then keeps the session alive."""
    client = sign_in("nurse_upp")
    idle = app.config["PRO_SETTINGS"].staff_idle_minutes
    start = utcnow()
    for minutes in (idle * 2 // 3, idle * 4 // 3, idle * 2):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            response = client.get("/staff/board")
            assert response.status_code == 200, f"signed out after {minutes} minutes of reading"


def test_enrolment_speaks_the_staff_members_own_language_from_the_password_on(
    app, client, staff_study
):
    """An admin whose account is in Swedish, in an English browser: once the password is
    checked, the enrolment page, its flash message and the page after it are all Swedish."""
    admin_id = staff_study.users["admin"]
    with app.app_context():
        admin = db.session.get(StaffUser, admin_id)
        admin.totp_secret_encrypted = None
        admin.language = "sv"
        db.session.commit()
    english = {"Accept-Language": "en-GB,en;q=0.9"}
    login = client.get("/staff/login", headers=english)
    assert "Sign in" in login.text  # before the password, the browser's language
    client.post(
        "/staff/login",
        headers=english,
        data={
            "email": staff_study.email("admin"),
            "password": PASSWORD,
            "csrf_token": csrf_of(login.text),
        },
    )
    page = client.get("/staff/account/two-factor", headers=english)
    assert "Slå på tvåstegsinloggning" in page.text
    assert "Turn on two-factor sign-in" not in page.text
    secret = _secret_on(page.text)
    done = client.post(
        "/staff/account/two-factor",
        headers=english,
        data={"code": totp_code(secret, int(time.time()) // 30), "csrf_token": csrf_of(page.text)},
        follow_redirects=True,
    )
    assert "Tvåstegsinloggning är påslagen." in done.text
    assert "Two-factor sign-in is on" not in done.text
    assert '<html lang="sv">' in done.text
