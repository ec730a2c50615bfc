"""`pro-service reset-two-factor EMAIL`: an operator helps a user who lost their phone."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import AuditEvent, StaffUser

from pages import read, sign_in_with_password


def test_reset_turns_two_factor_off_ends_sessions_and_admin_enrols_again(app, sign_in, staff_study):
    signed_in = sign_in("admin")
    assert signed_in.get("/staff/account").status_code == 200

    result = app.test_cli_runner().invoke(args=["reset-two-factor", "Admin@example.org"])
    assert result.exit_code == 0, result.output
    assert "Two-factor sign-in is off for admin@example.org; 1 session(s) ended." in result.output

    # The old session is over; the admin's next sign-in goes to two-factor enrolment.
    assert signed_in.get("/staff/account").headers["Location"].startswith("/staff/login")
    client = app.test_client()
    response = sign_in_with_password(client, "admin@example.org")
    assert response.headers["Location"] == "/staff/account/two-factor"
    secret = read(
        app,
        lambda s: s.scalar(
            select(StaffUser.totp_secret_encrypted).where(StaffUser.role == "admin")
        ),
    )
    assert secret is None
    actions = read(app, lambda s: list(s.scalars(select(AuditEvent.action))))
    assert "staff.two_factor_reset" in actions


def test_reset_names_the_problem(app, staff_study):
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["reset-two-factor", "nobody@example.org"])
    assert unknown.exit_code == 1
    assert "no staff user with email 'nobody@example.org'" in unknown.output
    not_enrolled = runner.invoke(args=["reset-two-factor", "anna.nurse@upp.example.org"])
    assert not_enrolled.exit_code == 1
    assert "anna.nurse@upp.example.org has no two-factor sign-in" in not_enrolled.output
