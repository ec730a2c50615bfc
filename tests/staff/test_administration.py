"""Administration in the browser: staff accounts, set-password links, sites, the guard rails and
the fresh two-factor check (pages as the admin uses them, read in English)."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import AuditEvent, PasswordLink, Site, StaffSession, StaffUser

from builders import PASSWORD, TOTP_SECRETS
from pages import csrf_of, read, sign_in_with_password, totp_code

NEW_EMAIL = "cecilia.nurse@upp.example.org"
GOOD_PASSWORD = "lingonberry ferry at dusk"


def _post(client, url, data=None, page=None):
    form = {"csrf_token": csrf_of(client.get(page or url).text), **(data or {})}
    return client.post(url, data=form)


def _user_id(app, email):
    return read(app, lambda s: s.scalar(select(StaffUser.id).where(StaffUser.email == email)))


def _audit(app, action):
    return read(
        app,
        lambda s: [
            (e.actor_id, e.object_id, e.before, e.after)
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action))
        ],
    )


def _link_in(html):
    match = re.search(r'value="(https?://[^"]+/staff/set-password/[^"]+)"', html)
    assert match, "the page shows no set-password link"
    return match.group(1).split("/staff/", 1)[1]


def _create_nurse(app, admin, staff_study, email=NEW_EMAIL):
    response = _post(
        admin,
        "/staff/admin/users/new",
        {
            "email": email,
            "display_name": "Cecilia",
            "role": "nurse",
            "sites": str(staff_study.sites["SE-UPP"]),
            "language": "en",
        },
        page="/staff/admin/users/new?lang=en",
    )
    assert response.status_code == 200, response.text
    return "/staff/" + _link_in(response.text)


def test_an_admin_creates_an_account_and_the_link_sets_its_first_password(
    app, sign_in, staff_study
):
    admin = sign_in("admin")
    link = _create_nurse(app, admin, staff_study)
    user_id = _user_id(app, NEW_EMAIL)
    # Audited with who and what; the link's token is never in the trail.
    ((actor, obj, _before, after),) = [
        e for e in _audit(app, "user.created") if e[1] == str(user_id)
    ]
    assert (actor, obj) == (str(staff_study.users["admin"]), str(user_id))
    assert after["role"] == "nurse" and after["sites"] == ["SE-UPP"]
    assert after["password_set"] is False
    assert link.rsplit("/", 1)[1] not in str(_audit(app, "user.password_link_issued"))
    # Listed, waiting for its password; no password signs in yet.
    listing = admin.get("/staff/admin/users?lang=en").text
    assert NEW_EMAIL in listing and "Password not set yet" in listing
    assert sign_in_with_password(app.test_client(), NEW_EMAIL, "").status_code == 200

    colleague = app.test_client()
    page = colleague.get(link + "?lang=en")
    assert page.status_code == 200 and NEW_EMAIL in page.text
    weak = colleague.post(
        link,
        data={"password": "Password1234", "repeat_password": "Password1234"}
        | {"csrf_token": csrf_of(page.text)},
    )
    assert weak.status_code == 400
    assert "on the list of common and breached passwords" in weak.text
    done = colleague.post(
        link,
        data={"password": GOOD_PASSWORD, "repeat_password": GOOD_PASSWORD}
        | {"csrf_token": csrf_of(page.text)},
    )
    assert done.status_code == 302 and done.headers["Location"] == "/staff/login"
    # Used once: the same link is dead now, and says so.
    again = app.test_client().get(link + "?lang=en")
    assert again.status_code == 410 and "already been used" in again.text
    signed_in = sign_in_with_password(app.test_client(), NEW_EMAIL, GOOD_PASSWORD)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/staff/board"
    assert _audit(app, "staff.password_set_by_link")


def test_a_link_expires_after_72_hours_and_a_new_one_replaces_the_old(app, sign_in, staff_study):
    admin = sign_in("admin")
    first = _create_nurse(app, admin, staff_study)
    user_id = _user_id(app, NEW_EMAIL)
    response = _post(
        admin,
        f"/staff/admin/users/{user_id}/password-link",
        page=f"/staff/admin/users/{user_id}?lang=en",
    )
    second = "/staff/" + _link_in(response.text)
    replaced = app.test_client().get(first + "?lang=en")
    assert replaced.status_code == 410 and "a newer link replaced it" in replaced.text
    assert app.test_client().get(second).status_code == 200
    with time_machine.travel(utcnow() + timedelta(hours=72, seconds=1)):
        expired = app.test_client().get(second + "?lang=en")
    assert expired.status_code == 410 and "This link has expired" in expired.text
    unknown = app.test_client().get("/staff/set-password/not-a-token?lang=en")
    assert unknown.status_code == 410 and "not valid" in unknown.text


def test_deactivation_ends_a_live_session_at_once_and_reactivation_lets_them_back(
    app, sign_in, staff_study
):
    nurse = sign_in("nurse_upp")
    assert nurse.get("/staff/board").status_code == 200
    admin = sign_in("admin")
    user_id = staff_study.users["nurse_upp"]
    response = _post(
        admin,
        f"/staff/admin/users/{user_id}/deactivate",
        page=f"/staff/admin/users/{user_id}?lang=en",
    )
    assert response.status_code == 302
    page = admin.get(response.headers["Location"] + "?lang=en").text
    assert "anna.nurse@upp.example.org is deactivated; 1 session(s) ended." in page
    assert nurse.get("/staff/board").headers["Location"].startswith("/staff/login")
    refused = sign_in_with_password(app.test_client(), "anna.nurse@upp.example.org")
    assert refused.status_code == 200  # the form again: no session
    ((_a, _o, before, after),) = _audit(app, "user.deactivated")
    assert before == {"is_active": True} and after["sessions_ended"] == 1

    _post(
        admin,
        f"/staff/admin/users/{user_id}/reactivate",
        page=f"/staff/admin/users/{user_id}?lang=en",
    )
    assert sign_in_with_password(app.test_client(), "anna.nurse@upp.example.org").status_code == 302


def test_role_and_site_changes_are_audited_before_and_after(app, sign_in, staff_study):
    admin = sign_in("admin")
    user_id = staff_study.users["investigator_upp"]
    response = _post(
        admin,
        f"/staff/admin/users/{user_id}",
        {
            "display_name": "PI Uppsala",
            "role": "investigator",
            "sites": [str(staff_study.sites["SE-UPP"]), str(staff_study.sites["FI-HEL"])],
            "language": "sv",
        },
    )
    assert response.status_code == 302
    ((_a, _o, before, after),) = _audit(app, "user.updated")
    assert before == {"display_name": "", "sites": ["SE-UPP"], "language": "en"}
    assert after == {"display_name": "PI Uppsala", "sites": ["FI-HEL", "SE-UPP"], "language": "sv"}


def test_guard_rails_name_the_problem_and_change_nothing(app, sign_in, staff_study):
    admin = sign_in("admin")
    admin_id = staff_study.users["admin"]
    own = _post(
        admin,
        f"/staff/admin/users/{admin_id}",
        {"role": "nurse", "sites": str(staff_study.sites["SE-UPP"]), "language": "en"},
        page=f"/staff/admin/users/{admin_id}?lang=en",
    )
    assert own.status_code == 400
    assert "You cannot change your own role or sites." in own.text
    deactivate_self = _post(
        admin,
        f"/staff/admin/users/{admin_id}/deactivate",
        page=f"/staff/admin/users/{admin_id}?lang=en",
    )
    page = admin.get(deactivate_self.headers["Location"] + "?lang=en").text
    assert "You cannot deactivate your own account." in page
    nurse_id = staff_study.users["nurse_hel"]
    all_sites_nurse = _post(
        admin,
        f"/staff/admin/users/{nurse_id}",
        {"role": "nurse", "all_sites": "y", "language": "fi"},
        page=f"/staff/admin/users/{nurse_id}?lang=en",
    )
    assert all_sites_nurse.status_code == 400
    assert "A research nurse belongs to one or more named sites" in all_sites_nurse.text
    bad_role = _post(
        admin,
        f"/staff/admin/users/{nurse_id}",
        {"role": "superuser", "sites": str(staff_study.sites["FI-HEL"]), "language": "fi"},
        page=f"/staff/admin/users/{nurse_id}?lang=en",
    )
    assert bad_role.status_code == 400 and "Not a valid choice" in bad_role.text
    no_site = _post(
        admin,
        f"/staff/admin/users/{nurse_id}",
        {"role": "nurse", "sites": "999999", "language": "fi"},
        page=f"/staff/admin/users/{nurse_id}?lang=en",
    )
    assert no_site.status_code == 400 and "A chosen site does not exist." in no_site.text
    duplicate = _post(
        admin,
        "/staff/admin/users/new",
        {"email": "PI@example.org", "role": "investigator", "all_sites": "y", "language": "en"},
        page="/staff/admin/users/new?lang=en",
    )
    assert duplicate.status_code == 400
    assert "An account with the email PI@example.org already exists." in duplicate.text
    # A button posted without the form's CSRF token is refused.
    forged = admin.post(f"/staff/admin/users/{nurse_id}/deactivate")
    assert forged.status_code == 400
    assert read(app, lambda s: s.get(StaffUser, nurse_id).is_active)
    roles = read(app, lambda s: dict(s.execute(select(StaffUser.email, StaffUser.role)).all()))
    assert roles["admin@example.org"] == "admin" and roles["hanna.nurse@hel.example.org"] == "nurse"
    assert not _audit(app, "user.updated") and not _audit(app, "user.deactivated")


def test_the_last_active_admin_cannot_be_deactivated_or_demoted(app, staff_study):
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["deactivate-user", "admin@example.org"])
    assert refused.exit_code == 1
    assert "admin@example.org is the last active administrator" in refused.output
    from pro_service.staff.administration import AdminError, update_account

    with app.app_context():
        admin = db.session.get(StaffUser, staff_study.users["admin"])
        try:
            update_account(
                db.session,
                now=utcnow(),
                by=None,
                user=admin,
                display_name="",
                role="investigator",
                site_ids=[],
                all_sites=True,
                language="en",
            )
        except AdminError as error:
            assert "last active administrator and must stay one" in str(error)
        else:
            raise AssertionError("the last admin was demoted")
        db.session.rollback()
    ok = runner.invoke(args=["deactivate-user", "anna.nurse@upp.example.org"])
    assert ok.exit_code == 0 and "is deactivated; 0 session(s) ended" in ok.output


def test_the_command_line_prints_a_working_link(app, staff_study):
    result = app.test_cli_runner().invoke(args=["password-link", "Anna.Nurse@upp.example.org"])
    assert result.exit_code == 0, result.output
    path = "/staff/" + result.output.strip().splitlines()[-1].split("/staff/", 1)[1]
    page = app.test_client().get(path)
    assert page.status_code == 200 and "anna.nurse@upp.example.org" in page.text


def test_admin_pages_want_a_code_from_the_last_15_minutes(app, sign_in, staff_study):
    admin = sign_in("admin")
    assert admin.get("/staff/admin/users").status_code == 200
    with app.app_context():
        for row in db.session.scalars(select(StaffSession)):
            row.second_factor_at = utcnow() - timedelta(minutes=16)
        db.session.commit()
    response = admin.get("/staff/admin/sites")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/admin/confirm?next=/staff/admin/sites"
    # A POST is not done either, and nothing changes.
    nurse_id = staff_study.users["nurse_hel"]
    token = csrf_of(admin.get("/staff/account").text)
    stale = admin.post(f"/staff/admin/users/{nurse_id}/deactivate", data={"csrf_token": token})
    assert stale.headers["Location"].startswith("/staff/admin/confirm")
    assert read(app, lambda s: s.get(StaffUser, nurse_id).is_active)
    # The code brings the admin back where they were going.
    page = admin.get("/staff/admin/confirm?next=/staff/admin/sites&lang=en")
    assert "Enter the 6-digit code" in page.text
    wrong = admin.post(
        "/staff/admin/confirm?next=/staff/admin/sites",
        data={"code": "000000", "csrf_token": csrf_of(page.text)},
    )
    assert wrong.status_code == 200 and "The code is not right" in wrong.text
    step = int(time.time()) // 30 + 1  # a step not used by the sign-in
    right = admin.post(
        "/staff/admin/confirm?next=/staff/admin/sites",
        data={"code": totp_code(TOTP_SECRETS["admin"], step), "csrf_token": csrf_of(page.text)},
    )
    assert right.status_code == 302 and right.headers["Location"] == "/staff/admin/sites"
    assert admin.get("/staff/admin/sites").status_code == 200
    assert _audit(app, "staff.second_factor_confirmed")


def test_sites_are_created_and_edited_with_clear_errors(app, sign_in, staff_study):
    admin = sign_in("admin")
    good = {
        "code": "FI-TUR",
        "name": "Turku",
        "country": "FI",
        "time_zone": "Europe/Helsinki",
        "default_language": "fi",
        "sending_start": "09:00",
        "sending_end": "19:00",
        "sms_sender": "",
        "study_id_pattern": r"TUR-\d{3}",
    }
    for field, value, message in (
        ("time_zone", "Europe/Turku", "Use a time zone name such as Europe/Stockholm"),
        ("sending_end", "08:00", "Use a time such as 20:00, later than the start."),
        ("code", "SE-UPP", "not a code another site has"),
        ("country", "FIN", "Field cannot be longer than 2 characters."),
        ("sms_sender", "123", "Use a sender name of 3-11 letters and digits"),
        ("study_id_pattern", "TUR-(", "This is not a valid regular expression."),
    ):
        response = _post(admin, "/staff/admin/sites/new", good | {field: value})
        assert response.status_code == 400, field
        assert message in response.text, field
    # Every bad field is named at once, beside its field.
    several = _post(
        admin,
        "/staff/admin/sites/new",
        good | {"code": "SE-UPP", "time_zone": "Mars/Olympus", "sending_end": "08:00"},
    )
    assert several.status_code == 400
    for field in ("code", "time_zone", "sending_end"):
        assert f'id="{field}-errors"' in several.text, field
    count = read(app, lambda s: s.scalar(select(func.count()).select_from(Site)))
    assert count == 2  # nothing half-made
    created = _post(admin, "/staff/admin/sites/new", good)
    assert created.status_code == 302
    site_id = read(app, lambda s: s.scalar(select(Site.id).where(Site.code == "FI-TUR")))
    taken = _post(admin, f"/staff/admin/sites/{site_id}", good | {"code": "FI-HEL"})
    assert taken.status_code == 400 and "not a code another site has" in taken.text
    edited = _post(
        admin, f"/staff/admin/sites/{site_id}", good | {"code": "fi-tku", "sms_sender": "TurkuPRO"}
    )
    assert edited.status_code == 302
    ((_a, _o, before, after),) = _audit(app, "site.updated")
    assert before == {"code": "FI-TUR", "sms_sender": None}
    assert after == {"code": "FI-TKU", "sms_sender": "TurkuPRO"}
    assert "TurkuPRO" in admin.get("/staff/admin/sites").text


def test_a_second_admin_must_enrol_two_factor_before_the_admin_pages(app, sign_in, staff_study):
    admin = sign_in("admin")
    user_id = staff_study.users["data_manager"]
    _post(
        admin,
        f"/staff/admin/users/{user_id}",
        {"role": "admin", "all_sites": "y", "language": "en"},
    )
    client = app.test_client()
    response = sign_in_with_password(client, "dm@example.org", PASSWORD)
    assert response.headers["Location"] == "/staff/account/two-factor"
    assert client.get("/staff/admin/users").headers["Location"] == "/staff/account/two-factor"
    links = read(app, lambda s: s.scalar(select(func.count()).select_from(PasswordLink)))
    assert links == 0
