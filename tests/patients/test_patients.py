"""Patient management on the staff pages: register, edit, surgery date, status, SMS actions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import g, render_template
from sqlalchemy import func, select

from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import (
    Assessment,
    AuditEvent,
    MessageStatus,
    OutboxMessage,
    Patient,
    StaffUser,
)
from pro_service.scheduling.assessments import current_token, local_today, update_windows

from pages import csrf_of, read

TODAY = utcnow().date()  # the staff study is made relative to the real clock


def _token(client) -> str:
    return csrf_of(client.get("/staff/patients/new").text)


def _detached(session, value):  # type: ignore[no-untyped-def]
    """Loaded column values stay readable after :func:`read` rolls back."""
    session.expunge_all()
    return value


def _patient(app, study_id: str) -> Patient:
    return read(
        app,
        lambda s: _detached(s, s.scalar(select(Patient).where(Patient.study_id == study_id))),
    )


def local_today_iso(app, patient_id: int) -> str:
    """The patient's site's today, as a date field takes it."""
    return read(app, lambda s: local_today(s.get(Patient, patient_id).site, utcnow()).isoformat())


def _count(app, model) -> int:
    return read(app, lambda s: s.scalar(select(func.count()).select_from(model)))


def _events(app, action: str) -> list[AuditEvent]:
    return read(
        app,
        lambda s: _detached(
            s,
            list(
                s.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            ),
        ),
    )


def _timepoints(app, patient_id: int) -> dict[str, Assessment]:
    return read(
        app,
        lambda s: _detached(
            s,
            {
                a.timepoint: a
                for a in s.scalars(select(Assessment).where(Assessment.patient_id == patient_id))
            },
        ),
    )


def _change(app, fn) -> None:  # type: ignore[no-untyped-def]
    """Change the database directly (set up a situation the pages must handle)."""
    with app.app_context():
        fn(db.session)
        db.session.commit()


def _open_windows(app) -> None:
    _change(app, lambda s: update_windows(s, now=utcnow(), vault=app.extensions["vault"]))


# --- registration ------------------------------------------------------------------------------


def _register_form(staff_study, **overrides) -> dict[str, str]:
    data = {
        "site": str(staff_study.sites["SE-UPP"]),
        "study_id": "UPP-010",
        "phone": "070-174 06 50",
        "language": "",
        "inclusion_date": TODAY.isoformat(),
        "surgery_date": "",
    }
    data.update(overrides)
    return data


def test_a_nurse_registers_a_patient_with_the_sites_defaults(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    page = client.get("/staff/patients/new")
    assert page.status_code == 200
    # One site: preselected, and the language defaults to the site's (Swedish).
    assert f'<option selected value="{staff_study.sites["SE-UPP"]}">' in page.text
    assert '<option selected value="sv">' in page.text
    assert 'type="date"' in page.text
    data = _register_form(staff_study, surgery_date=(TODAY + timedelta(days=60)).isoformat())
    response = client.post("/staff/patients/new", data={**data, "csrf_token": csrf_of(page.text)})
    assert response.status_code == 302
    assert (
        "Patient UPP-010 is registered."
        in client.get(response.headers["Location"], follow_redirects=True).text
    )
    patient = _patient(app, "UPP-010")
    assert patient.language == "sv"
    assert patient.surgery_date == TODAY + timedelta(days=60)
    assert app.extensions["vault"].decrypt(patient.phone_encrypted) == "+46701740650"
    assert len(_timepoints(app, patient.id)) == 8
    event = _events(app, "patient.registered")[-1]
    assert event.actor_type == "staff"
    assert event.actor_id == str(staff_study.users["nurse_upp"])
    assert "1740650" not in str(event.after)


def test_a_valid_foreign_mobile_number_is_accepted(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    data = _register_form(staff_study, phone="+1 650 253 0000", language="en")
    response = client.post("/staff/patients/new", data={**data, "csrf_token": _token(client)})
    assert response.status_code == 302
    patient = _patient(app, "UPP-010")
    assert app.extensions["vault"].decrypt(patient.phone_encrypted) == "+16502530000"
    assert patient.language == "en"


def test_the_site_can_be_preselected_in_the_address(sign_in, staff_study):
    client = sign_in("nurse_hel")
    page = client.get(f"/staff/patients/new?site={staff_study.sites['FI-HEL']}")
    assert f'<option selected value="{staff_study.sites["FI-HEL"]}">' in page.text
    assert '<option selected value="fi">' in page.text


def test_the_study_id_hint_gives_an_example_never_the_regular_expression(sign_in, staff_study):
    page = sign_in("nurse_upp").get("/staff/patients/new").text
    assert "As on the inclusion form, for example UPP-001." in page
    assert "\\d" not in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"phone": "12345"}, "phone", "not a valid mobile phone number"),
        ({"phone": "08-123 456 78"}, "phone", "not a valid mobile phone number"),  # landline
        ({"phone": "+1 555 0100"}, "phone", "not a valid mobile phone number"),
        ({"phone": ""}, "phone", "This field is required."),
        ({"study_id": "UPP-001"}, "study_id", "A patient with study ID UPP-001 already exists."),
        (
            {"study_id": "HEL-010"},
            "study_id",
            "HEL-010 does not have this site&#39;s study ID format, for example UPP-001.",
        ),
        ({"inclusion_date": "1956-03-01"}, "inclusion_date", "more than a year ago"),
        ({"inclusion_date": "2999-01-01"}, "inclusion_date", "more than 30 days ahead"),
        ({"inclusion_date": "yesterday"}, "inclusion_date", "Not a valid date value."),
        ({"inclusion_date": ""}, "inclusion_date", "This field is required."),
        ({"surgery_date": "2001-01-01"}, "surgery_date", "before the inclusion date"),
        ({"surgery_date": "2099-01-01"}, "surgery_date", "more than 1095 days after"),
        ({"language": "de"}, "language", "Not a valid choice"),
    ],
)
def test_bad_registration_names_the_field_and_saves_nothing(
    app, sign_in, staff_study, overrides, field, message
):
    client = sign_in("nurse_upp")
    patients, events = _count(app, Patient), _count(app, AuditEvent)
    data = _register_form(staff_study, **overrides)
    response = client.post("/staff/patients/new", data={**data, "csrf_token": _token(client)})
    assert response.status_code == 200
    errors = response.text.split(f'id="{field}-errors"', 1)
    assert len(errors) == 2, f"no errors next to {field}"
    assert message in errors[1].split("</ul>", 1)[0]
    assert 'aria-invalid="true"' in response.text
    assert _count(app, Patient) == patients
    assert _count(app, AuditEvent) == events


def test_registration_without_csrf_token_is_refused(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    response = client.post("/staff/patients/new", data=_register_form(staff_study))
    assert response.status_code == 400
    assert _patient(app, "UPP-010") is None


def test_a_nurse_cannot_register_at_another_site(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    other = staff_study.sites["FI-HEL"]
    assert client.get(f"/staff/patients/new?site={other}").status_code == 404
    data = _register_form(staff_study, site=str(other), study_id="HEL-010", phone="+358501234560")
    response = client.post("/staff/patients/new", data={**data, "csrf_token": _token(client)})
    assert response.status_code == 404
    assert _patient(app, "HEL-010") is None


@pytest.mark.parametrize("persona", ["investigator", "investigator_upp", "admin", "data_manager"])
def test_only_nurses_have_the_patient_actions(app, sign_in, staff_study, persona):
    client = sign_in(persona)
    pid = staff_study.patients["UPP-001"]
    assert client.get("/staff/patients/new").status_code == 404
    assert client.get(f"/staff/patients/{pid}/edit").status_code == 404
    assert client.get(f"/staff/patients/{pid}/surgery").status_code == 404
    assert client.get(f"/staff/patients/{pid}/status").status_code == 404
    token = csrf_of(client.get("/staff/", follow_redirects=True).text)
    for action in ("resend", "opt-in", "phone"):
        assert (
            client.post(f"/staff/patients/{pid}/{action}", data={"csrf_token": token}).status_code
            == 404
        )


def test_another_sites_nurse_gets_404_on_every_action(app, sign_in, staff_study):
    client = sign_in("nurse_hel")
    pid = staff_study.patients["UPP-001"]
    token = _token(client)
    for path in ("edit", "surgery", "status"):
        assert client.get(f"/staff/patients/{pid}/{path}").status_code == 404
    response = client.post(
        f"/staff/patients/{pid}/edit",
        data={
            "csrf_token": token,
            "study_id": "UPP-001",
            "language": "fi",
            "inclusion_date": TODAY.isoformat(),
            "reason": "x",
        },
    )
    assert response.status_code == 404
    for action in ("resend", "opt-in", "phone"):
        assert (
            client.post(f"/staff/patients/{pid}/{action}", data={"csrf_token": token}).status_code
            == 404
        )
    assert _patient(app, "UPP-001").language == "sv"
    assert _events(app, "patient.phone_viewed") == []


# --- editing -----------------------------------------------------------------------------------


def _edit(client, pid, **data):
    page = client.get(f"/staff/patients/{pid}/edit")
    assert page.status_code == 200
    patient_data = {
        "study_id": data.pop("study_id", None),
        "language": data.pop("language", None),
        "inclusion_date": data.pop("inclusion_date", None),
    }
    form = {"csrf_token": csrf_of(page.text), "phone": "", "reason": ""}
    form.update({k: v for k, v in patient_data.items() if v is not None})
    form.update(data)
    return client.post(f"/staff/patients/{pid}/edit", data=form)


def _current(app, study_id):
    patient = _patient(app, study_id)
    return {
        "study_id": patient.study_id,
        "language": patient.language,
        "inclusion_date": patient.inclusion_date.isoformat(),
    }


def test_the_language_can_change_without_a_reason(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    response = _edit(client, pid, **{**_current(app, "UPP-001"), "language": "fi"})
    assert response.status_code == 302
    assert _patient(app, "UPP-001").language == "fi"
    event = _events(app, "patient.updated")[-1]
    assert event.before == {"language": "sv"}
    assert event.after == {"language": "fi"}


def test_changing_the_inclusion_date_needs_a_reason(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    before = _timepoints(app, pid)["baseline"].due_date
    new = (TODAY - timedelta(days=5)).isoformat()
    response = _edit(
        client, pid, **{**_current(app, "UPP-001"), "inclusion_date": new, "language": "en"}
    )
    assert response.status_code == 200
    assert (
        "A reason is required for every change to study data."
        in response.text.split('id="reason-errors"', 1)[1]
    )
    assert _patient(app, "UPP-001").language == "sv"  # nothing of the request saved
    assert _timepoints(app, pid)["baseline"].due_date == before
    assert _events(app, "patient.updated") == []


def test_a_new_inclusion_date_recomputes_the_inclusion_time_points(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    surgery_due = _timepoints(app, pid)["m3"].due_date
    new = TODAY - timedelta(days=5)
    response = _edit(
        client,
        pid,
        **{**_current(app, "UPP-001"), "inclusion_date": new.isoformat()},
        reason="inclusion date typed wrong",
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"], follow_redirects=True).text
    assert "1 time point was rescheduled." in page
    tps = _timepoints(app, pid)
    assert tps["baseline"].due_date == new
    assert tps["baseline"].status == "open"  # its new window includes today
    assert tps["baseline"].token_hash is not None
    assert tps["m3"].due_date == surgery_due  # surgery-anchored: unchanged
    event = _events(app, "patient.updated")[-1]
    assert event.reason == "inclusion date typed wrong"
    assert event.before["inclusion_date"] == (TODAY - timedelta(days=20)).isoformat()
    assert event.after["inclusion_date"] == new.isoformat()
    assert event.after["baseline"]["due_date"] == new.isoformat()


def test_a_new_inclusion_date_leaves_a_completed_time_point_alone(app, sign_in, staff_study):
    pid = staff_study.patients["UPP-001"]
    now = utcnow()

    def complete_baseline(s):
        baseline = s.scalar(
            select(Assessment).where(
                Assessment.patient_id == pid, Assessment.timepoint == "baseline"
            )
        )
        baseline.status, baseline.started_at, baseline.completed_at = "completed", now, now

    _change(app, complete_baseline)
    before = _timepoints(app, pid)["baseline"].due_date
    client = sign_in("nurse_upp")
    response = _edit(
        client,
        pid,
        **{**_current(app, "UPP-001"), "inclusion_date": (TODAY - timedelta(days=5)).isoformat()},
        reason="wrong date",
    )
    assert response.status_code == 302
    baseline = _timepoints(app, pid)["baseline"]
    assert (baseline.status, baseline.due_date) == ("completed", before)
    assert _patient(app, "UPP-001").inclusion_date == TODAY - timedelta(days=5)


def test_the_study_id_can_be_corrected_with_a_reason(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    refused = _edit(
        client, pid, **{**_current(app, "UPP-001"), "study_id": "UPP-002"}, reason="typo"
    )
    assert "A patient with study ID UPP-002 already exists." in refused.text
    response = _edit(
        client, pid, **{**_current(app, "UPP-001"), "study_id": "UPP-009"}, reason="typo"
    )
    assert response.status_code == 302
    assert _patient(app, "UPP-009").id == pid


def test_a_new_phone_number_clears_the_flag_and_resends_a_failed_invitation(
    app, sign_in, staff_study
):
    pid = staff_study.patients["UPP-001"]
    _open_windows(app)
    now = utcnow()

    def failed_invitation(s):
        patient = s.get(Patient, pid)
        patient.phone_invalid = True
        preop = next(a for a in patient.assessments if a.timepoint == "preop")
        assert preop.status == "open"
        preop.invitation_queued_at = now
        s.add(
            OutboxMessage(
                patient_id=pid,
                assessment_id=preop.id,
                kind="invitation",
                language="sv",
                scheduled_for=now,
                status=MessageStatus.FAILED.value,
                error_code="21614",
                attempts=1,
                created_at=now,
                updated_at=now,
            )
        )

    _change(app, failed_invitation)
    client = sign_in("nurse_upp")
    response = _edit(client, pid, **_current(app, "UPP-001"), phone="070 174 06 77")
    assert response.status_code == 302
    page = client.get(response.headers["Location"], follow_redirects=True).text
    assert "1 questionnaire link will be sent again to the new number." in page
    patient = _patient(app, "UPP-001")
    assert patient.phone_invalid is False
    assert app.extensions["vault"].decrypt(patient.phone_encrypted) == "+46701740677"
    assert _timepoints(app, pid)["preop"].invitation_queued_at is None  # queued anew
    event = _events(app, "patient.updated")[-1]
    assert event.after["phone_changed"] is True
    assert event.after["phone_invalid"] is False
    assert "1740677" not in str(event.after) + str(event.before)


def test_an_invalid_new_phone_number_is_refused(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    old = _patient(app, "UPP-001").phone_encrypted
    response = _edit(client, pid, **{**_current(app, "UPP-001"), "language": "en"}, phone="0701")
    assert "not a valid mobile phone number" in response.text.split('id="phone-errors"', 1)[1]
    patient = _patient(app, "UPP-001")
    assert (patient.phone_encrypted, patient.language) == (old, "sv")


# --- surgery date ------------------------------------------------------------------------------


def _surgery(client, pid, surgery_date, reason):
    page = client.get(f"/staff/patients/{pid}/surgery")
    assert page.status_code == 200
    return client.post(
        f"/staff/patients/{pid}/surgery",
        data={"csrf_token": csrf_of(page.text), "surgery_date": surgery_date, "reason": reason},
    )


def test_moving_the_surgery_date_reschedules_and_says_how_many(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    new = TODAY + timedelta(days=40)
    response = _surgery(client, pid, new.isoformat(), "theatre rebooked")
    assert response.status_code == 302
    page = client.get(response.headers["Location"], follow_redirects=True).text
    assert "The surgery date is saved." in page
    # The seven after surgery, and the baseline (opened late, cut at the day before the old
    # surgery date), which gets its full window back.
    assert "8 time points were rescheduled." in page
    tps = _timepoints(app, pid)
    assert tps["preop"].due_date == new - timedelta(days=7)
    baseline = tps["baseline"]
    assert baseline.window_closes == baseline.window_opens + timedelta(days=14)
    event = _events(app, "patient.surgery_date_changed")[-1]
    assert event.reason == "theatre rebooked"


def test_removing_the_surgery_date_cancels_the_time_points_after_surgery(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    response = _surgery(client, pid, "", "surgery cancelled")
    page = client.get(response.headers["Location"], follow_redirects=True).text
    assert "The surgery date is removed." in page
    assert "7 time points were cancelled." in page
    assert _patient(app, "UPP-001").surgery_date is None


@pytest.mark.parametrize(
    ("surgery_date", "reason", "field", "message"),
    [
        ("2001-01-01", "x", "surgery_date", "before the inclusion date"),
        ("2099-01-01", "x", "surgery_date", "is more than 1095 days after “Inclusion”"),
        ((TODAY + timedelta(days=30)).isoformat(), " ", "reason", "A reason is required"),
    ],
)
def test_bad_surgery_dates_are_refused(
    app, sign_in, staff_study, surgery_date, reason, field, message
):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    response = _surgery(client, pid, surgery_date, reason)
    assert response.status_code == 200
    assert message in response.text.split(f'id="{field}-errors"', 1)[1]
    assert _patient(app, "UPP-001").surgery_date == TODAY + timedelta(days=5)
    assert _events(app, "patient.surgery_date_changed") == []


def test_a_first_surgery_date_needs_no_reason_but_a_change_does_and_says_so(
    app, sign_in, staff_study
):
    client = sign_in("nurse_upp")
    registered = client.post(
        "/staff/patients/new",
        data={**_register_form(staff_study, surgery_date=""), "csrf_token": _token(client)},
    )
    assert registered.status_code == 302
    pid = _patient(app, "UPP-010").id
    first = client.get(f"/staff/patients/{pid}/surgery").text
    assert "(required)" not in first
    assert "Not needed for the first surgery date." in first
    response = _surgery(client, pid, (TODAY + timedelta(days=20)).isoformat(), "")
    assert response.status_code == 302
    assert _patient(app, "UPP-010").surgery_date == TODAY + timedelta(days=20)
    assert _events(app, "patient.surgery_date_changed")[-1].reason is None

    change = client.get(f"/staff/patients/{pid}/surgery").text
    reason_field = change.split('<label for="reason"', 1)[1].split("</div>", 1)[0]
    assert "Reason for the change (required)" in reason_field
    assert 'aria-required="true"' in reason_field
    refused = _surgery(client, pid, (TODAY + timedelta(days=25)).isoformat(), "")
    assert "A reason is required" in refused.text.split('id="reason-errors"', 1)[1]
    assert _patient(app, "UPP-010").surgery_date == TODAY + timedelta(days=20)


# --- status ------------------------------------------------------------------------------------


def test_withdrawal_asks_for_confirmation_then_cancels_pending_messages(app, sign_in, staff_study):
    pid = staff_study.patients["UPP-001"]
    _open_windows(app)
    now = utcnow()
    _change(
        app,
        lambda s: s.add(
            OutboxMessage(
                patient_id=pid,
                assessment_id=None,
                kind="reminder",
                language="sv",
                scheduled_for=now,
                status=MessageStatus.PENDING.value,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        ),
    )
    client = sign_in("nurse_upp")
    page = client.get(f"/staff/patients/{pid}/status")
    data = {
        "csrf_token": csrf_of(page.text),
        "status": "withdrawn",
        "status_date": local_today_iso(app, pid),
        "withdrawal_kind": "questionnaires",
        "reason": "patient's wish",
    }
    confirm = client.post(f"/staff/patients/{pid}/status", data=data)
    assert confirm.status_code == 200
    assert "Please confirm" in confirm.text
    assert "From the questionnaires only" in confirm.text
    assert _patient(app, "UPP-001").status == "active"  # not yet
    done = client.post(f"/staff/patients/{pid}/status", data={**data, "confirmed": "yes"})
    assert done.status_code == 302
    patient = _patient(app, "UPP-001")
    assert (patient.status, patient.withdrawal_kind) == ("withdrawn", "questionnaires")
    assert patient.status_date.isoformat() == data["status_date"]
    statuses = read(
        app,
        lambda s: set(
            s.scalars(select(OutboxMessage.status).where(OutboxMessage.patient_id == pid))
        ),
    )
    assert statuses == {"cancelled"}
    # Every time point not yet over is cancelled: the baseline (opened late at registration,
    # not answered) and "before surgery".
    assert {a.status for a in _timepoints(app, pid).values()} == {"cancelled"}
    assert _timepoints(app, pid)["preop"].status == "cancelled"
    assert _events(app, "patient.withdrawn")[-1].reason == "patient's wish"


def test_withdrawal_needs_a_reason(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    page = client.get(f"/staff/patients/{pid}/status")
    response = client.post(
        f"/staff/patients/{pid}/status",
        data={
            "csrf_token": csrf_of(page.text),
            "status": "deceased",
            "status_date": local_today_iso(app, pid),
            "reason": "",
            "confirmed": "yes",
        },
    )
    assert response.status_code == 200
    assert "A reason is required" in response.text.split('id="reason-errors"', 1)[1]
    assert _patient(app, "UPP-001").status == "active"


# --- resend, opt-in, phone ----------------------------------------------------------------------


def test_resending_the_link_is_limited(app, sign_in, staff_study):
    pid = staff_study.patients["UPP-001"]
    client = sign_in("nurse_upp")
    token = _token(client)
    nothing_open = client.post(
        f"/staff/patients/{pid}/resend", data={"csrf_token": token}, follow_redirects=True
    )
    assert "The patient has no open questionnaire link." in nothing_open.text
    _open_windows(app)

    def resend():
        return client.post(
            f"/staff/patients/{pid}/resend", data={"csrf_token": token}, follow_redirects=True
        ).text

    def mark_sent(s):
        for message in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "resend")):
            message.status = MessageStatus.SENT.value

    assert "The questionnaire link will be sent again" in resend()
    assert "already waiting to be sent" in resend()  # the first has not gone out yet
    _change(app, mark_sent)
    assert "will be sent again" in resend()
    _change(app, mark_sent)
    assert "will be sent again" in resend()
    _change(app, mark_sent)
    assert "already sent again 3 times in the last 24 hours" in resend()
    count = read(
        app,
        lambda s: s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "resend")
        ),
    )
    assert count == 3
    assert len(_events(app, "message.resend_queued")) == 3


def _pending_invitation(app, pid) -> int:
    now = utcnow()
    preop = _timepoints(app, pid)["preop"].id

    def add(s):
        s.add(
            OutboxMessage(
                patient_id=pid,
                assessment_id=preop,
                kind="invitation",
                language="sv",
                scheduled_for=now,
                status=MessageStatus.PENDING.value,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )

    _change(app, add)
    return preop


def test_a_resend_while_the_invitation_waits_is_refused_so_the_patient_gets_one_sms(
    app, sign_in, staff_study
):
    pid = staff_study.patients["UPP-001"]
    _open_windows(app)
    preop = _pending_invitation(app, pid)
    client = sign_in("nurse_upp")
    response = client.post(
        f"/staff/patients/{pid}/resend",
        data={"csrf_token": _token(client), "assessment_id": str(preop)},
        follow_redirects=True,
    )
    assert "The link is already waiting to be sent (within sending hours)." in response.text
    kinds = read(app, lambda s: s.scalars(select(OutboxMessage.kind)).all())
    assert kinds == ["invitation"]
    assert _events(app, "message.resend_queued") == []


def test_a_number_marked_not_working_gets_no_resend_and_the_nurse_can_show_the_link(
    app, sign_in, staff_study
):
    pid = staff_study.patients["UPP-001"]
    _open_windows(app)
    _change(app, lambda s: setattr(s.get(Patient, pid), "phone_invalid", True))
    preop = _timepoints(app, pid)["preop"].id
    client = sign_in("nurse_upp")
    page = client.get(f"/staff/patients/{pid}").text
    assert "Send the link again" not in page
    assert "correct it before sending the link again" in page
    assert f'action="/staff/patients/{pid}/link"' in page

    refused = client.post(  # a page opened before the number was flagged
        f"/staff/patients/{pid}/resend",
        data={"csrf_token": _token(client), "assessment_id": str(preop)},
        follow_redirects=True,
    )
    assert "The phone number is marked as not working" in refused.text
    assert "Correct the number first" in refused.text
    assert _count(app, OutboxMessage) == 0

    shown = client.post(
        f"/staff/patients/{pid}/link",
        data={"csrf_token": _token(client), "assessment_id": str(preop)},
    )
    assert shown.status_code == 200
    token = read(
        app,
        lambda s: current_token(s.get(Assessment, preop), app.extensions["vault"]),
    )
    assert f"https://pro.example.test/q/{token}" in shown.text
    (event,) = _events(app, "assessment.link_viewed")
    assert event.object_id == str(preop)
    assert token not in json.dumps([event.before, event.after, event.reason])
    # Only the nurses of the patient's own site see the link.
    other_site = sign_in("nurse_hel")
    assert (
        other_site.post(
            f"/staff/patients/{pid}/link",
            data={"csrf_token": _token(other_site), "assessment_id": str(preop)},
        ).status_code
        == 404
    )
    investigator = sign_in("investigator_upp")
    assert (
        investigator.post(
            f"/staff/patients/{pid}/link",
            data={
                "csrf_token": csrf_of(investigator.get("/staff/account").text),
                "assessment_id": str(preop),
            },
        ).status_code
        == 404
    )


def test_resend_of_another_patients_time_point_is_refused(app, sign_in, staff_study):
    _open_windows(app)
    other = _timepoints(app, staff_study.patients["HEL-001"])["baseline"].id
    client = sign_in("nurse_upp")
    response = client.post(
        f"/staff/patients/{staff_study.patients['UPP-001']}/resend",
        data={"csrf_token": _token(client), "assessment_id": str(other)},
    )
    assert response.status_code == 404
    assert _count(app, OutboxMessage) == 0


def test_a_nurse_opts_a_patient_back_in_with_a_reason(app, sign_in, staff_study):
    pid = staff_study.patients["UPP-001"]
    _open_windows(app)
    now = utcnow()

    def opted_out(s):
        patient = s.get(Patient, pid)
        patient.opted_out, patient.opted_out_at = True, now
        preop = next(a for a in patient.assessments if a.timepoint == "preop")
        assert preop.status == "open"
        preop.invitation_queued_at = now  # skipped while opted out

    _change(app, opted_out)
    client = sign_in("nurse_upp")
    token = _token(client)
    refused = client.post(
        f"/staff/patients/{pid}/opt-in",
        data={"csrf_token": token, "reason": ""},
        follow_redirects=True,
    )
    assert "A reason is required" in refused.text
    assert _patient(app, "UPP-001").opted_out is True
    done = client.post(
        f"/staff/patients/{pid}/opt-in",
        data={"csrf_token": token, "reason": "asked by phone to get SMS again"},
        follow_redirects=True,
    )
    assert "The patient will receive SMS again." in done.text
    assert _patient(app, "UPP-001").opted_out is False
    assert _timepoints(app, pid)["preop"].invitation_queued_at is None  # invited again
    event = _events(app, "patient.opted_in")[-1]
    assert event.reason == "asked by phone to get SMS again"
    again = client.post(
        f"/staff/patients/{pid}/opt-in",
        data={"csrf_token": token, "reason": "x"},
        follow_redirects=True,
    )
    assert "The patient has not opted out of SMS." in again.text


def test_the_phone_number_is_shown_to_the_sites_nurse_and_audited(app, sign_in, staff_study):
    client = sign_in("nurse_upp2")
    pid = staff_study.patients["UPP-001"]
    assert client.get(f"/staff/patients/{pid}/phone").status_code == 405
    no_token = client.post(f"/staff/patients/{pid}/phone")
    assert no_token.status_code == 400
    response = client.post(f"/staff/patients/{pid}/phone", data={"csrf_token": _token(client)})
    assert response.status_code == 200
    assert "+46 70 174 06 05" in response.text
    assert 'href="tel:+46701740605"' in response.text
    assert response.headers["Cache-Control"] == "no-store"
    [event] = _events(app, "patient.phone_viewed")
    assert event.actor_id == str(staff_study.users["nurse_upp2"])
    assert event.object_id == str(pid)
    assert "1740605" not in f"{event.before}{event.after}{event.reason}"


@pytest.mark.parametrize("persona", ["investigator", "admin", "nurse_hel"])
def test_the_phone_number_is_refused_to_everybody_else(app, sign_in, staff_study, persona):
    client = sign_in(persona)
    token = csrf_of(client.get("/staff/", follow_redirects=True).text)
    response = client.post(
        f"/staff/patients/{staff_study.patients['UPP-001']}/phone", data={"csrf_token": token}
    )
    assert response.status_code == 404
    assert "174 06 05" not in response.text
    assert _events(app, "patient.phone_viewed") == []


# --- the actions partial -----------------------------------------------------------------------


def _render_actions(app, staff_study, persona, study_id="UPP-001") -> str:
    with app.test_request_context("/staff/"):
        g.user = db.session.get(StaffUser, staff_study.users[persona])
        g.now = utcnow()
        patient = db.session.get(Patient, staff_study.patients[study_id])
        return render_template("staff/patients/_actions.html", patient=patient)


def test_the_actions_show_only_to_the_sites_nurses(app, staff_study):
    _open_windows(app)
    html = _render_actions(app, staff_study, "nurse_upp")
    pid = staff_study.patients["UPP-001"]
    for path in ("edit", "surgery", "status", "phone", "resend"):
        assert f"/staff/patients/{pid}/{path}" in html
    assert "opt-in" not in html  # not opted out
    for persona in ("investigator", "investigator_upp", "admin", "nurse_hel"):
        assert _render_actions(app, staff_study, persona).strip() == ""


def test_an_opted_out_patient_shows_the_opt_in_form_and_no_resend(app, staff_study):
    pid = staff_study.patients["UPP-001"]
    _open_windows(app)
    _change(app, lambda s: setattr(s.get(Patient, pid), "opted_out", True))
    html = _render_actions(app, staff_study, "nurse_upp")
    assert f"/staff/patients/{pid}/opt-in" in html
    assert "/resend" not in html


def test_the_confirmation_page_carries_the_choice_to_the_final_post(app, sign_in, staff_study):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-002"]
    page = client.get(f"/staff/patients/{pid}/status")
    confirm = client.post(
        f"/staff/patients/{pid}/status",
        data={
            "csrf_token": csrf_of(page.text),
            "status": "not_operated",
            "status_date": local_today_iso(app, pid),
            "reason": "inoperable",
        },
    )
    assert 'name="confirmed" type="hidden" value="yes"' in confirm.text
    assert 'name="status" value="not_operated"' in confirm.text
    assert f'name="status_date" value="{local_today_iso(app, pid)}"' in confirm.text
    assert 'name="reason" value="inoperable"' in confirm.text
    # The follow-up track the status begins, with its windows.
    assert "3 months after the decision not to operate" in confirm.text
    assert _patient(app, "UPP-002").status == "active"


@pytest.mark.parametrize("language", ["sv", "fi"])
def test_the_pages_render_in_swedish_and_finnish(sign_in, staff_study, language):
    client = sign_in("nurse_upp")
    pid = staff_study.patients["UPP-001"]
    for path in ("new", f"{pid}/edit", f"{pid}/surgery", f"{pid}/status"):
        response = client.get(f"/staff/patients/{path}?lang={language}")
        assert response.status_code == 200, path
        assert f'<html lang="{language}">' in response.text
