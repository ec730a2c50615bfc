"""Signing in and out of the staff pages."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from pro_service.clock import utcnow
from pro_service.models import AuditEvent, StaffSession

from .conftest import csrf_of, read, sign_in_with_password


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
    assert '<html lang="en">' in client.get("/staff/").text  # the user's own language
    page = client.get("/staff/?lang=fi", follow_redirects=True)
    assert '<html lang="fi">' in page.text
    assert '<html lang="fi">' in client.get("/staff/").text
