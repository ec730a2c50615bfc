"""The audit trail page (admins only): what it shows, its filters, paging and CSV download.

That audit rows cannot be changed or deleted (ORM hook and database triggers) is tested in
tests/test_migrations.py.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, select

from pro_service.audit import Actor, record
from pro_service.clock import utcnow
from pro_service.models import Assessment, AuditEvent, Patient
from pro_service.patients.schedule_changes import change_surgery_date

from pages import csrf_of, read

# The staff_study patients' numbers, as typed and in E.164, and their bare digits.
PHONES = (
    "070-174 06 05",
    "+46701740605",
    "0701740605",
    "070-174 06 06",
    "+46701740606",
    "0701740606",
    "+358 50 123 4567",
    "+358501234567",
    "0501234567",
)


def _in_app(app, work):
    from pro_service.extensions import db

    with app.app_context():
        try:
            result = work(db.session)
            db.session.commit()
            return result
        finally:
            db.session.close()


def _move_surgery(app, staff_study, study_id="UPP-001", days=7, reason="Operation postponed"):
    def work(session):
        patient = session.get(Patient, staff_study.patients[study_id])
        change_surgery_date(
            session,
            now=utcnow(),
            actor=Actor.staff(staff_study.users["nurse_upp"]),
            schedule=app.extensions["schedule"],
            vault=app.extensions["vault"],
            patient=patient,
            new_date=patient.surgery_date + timedelta(days=days),
            reason=reason,
        )
        return patient.surgery_date

    return _in_app(app, work)


def _add_events(app, count, *, at, action="test.event", **fields):
    def work(session):
        for n in range(count):
            record(
                session,
                now=at + timedelta(seconds=n),
                actor=Actor.system("scheduler"),
                action=action,
                **fields,
            )

    _in_app(app, work)


def _rows(html: str) -> list[str]:
    """The text of each row of the events table, tags stripped."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", row).split())
        for row in body.split("</tr>")
        if "<td" in row
    ]


def _actions(rows: list[str]) -> list[str]:
    """The action of each row (the first word that looks like ``thing.happened``)."""
    return [next(w for w in row.split() if re.fullmatch(r"[a-z_]+\.[a-z_.]+", w)) for row in rows]


def _download(client, page_text: str, **filters):
    return client.post("/staff/audit/export", data={"csrf_token": csrf_of(page_text), **filters})


def test_an_admin_sees_sign_ins_patient_changes_and_exports(app, sign_in, staff_study):
    old_date = read(app, lambda s: s.get(Patient, staff_study.patients["UPP-001"]).surgery_date)
    new_date = _move_surgery(app, staff_study)
    manager = sign_in("data_manager")
    form = manager.get("/staff/exports")
    manager.post("/staff/exports", data={"csrf_token": csrf_of(form.text), "fmt": "long"}).close()

    page = sign_in("admin").get("/staff/audit")
    assert page.status_code == 200
    rows = _rows(page.text)
    # newest first: the admin's own sign-in, the export, the data manager's sign-in, the change
    assert rows[0].startswith(utcnow().strftime("%Y-%m-%d"))
    assert "admin@example.org staff.signed_in Staff user admin@example.org" in rows[0]
    assert "dm@example.org export.downloaded Export" in rows[1]
    assert "format: long" in rows[1]
    assert "dm@example.org staff.signed_in" in rows[2]
    change = rows[3]
    assert (
        "anna.nurse@upp.example.org patient.surgery_date_changed Patient UPP-001 SE-UPP" in change
    )
    assert f"surgery_date: {old_date.isoformat()} → changed to {new_date.isoformat()}" in change
    assert change.endswith("Operation postponed")
    registered = [r for r in rows if "patient.registered" in r]
    assert len(registered) == 3
    assert "Operator (cli) patient.registered Patient HEL-001 FI-HEL" in registered[0]
    assert "has_phone: true" in registered[0]
    assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "persona", ["nurse_upp", "investigator", "investigator_upp", "data_manager"]
)
def test_the_audit_trail_is_not_found_for_other_roles(app, sign_in, persona):
    client = sign_in(persona)
    assert client.get("/staff/audit").status_code == 404
    home = client.get("/staff/", follow_redirects=True)
    assert "/staff/audit" not in home.text  # nor in the navigation
    response = client.post("/staff/audit/export", data={"csrf_token": csrf_of(home.text)})
    assert response.status_code == 404
    exported = read(
        app, lambda s: s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.exported"))
    )
    assert list(exported) == []


def test_the_filters_narrow_the_events(app, sign_in, staff_study):
    _move_surgery(app, staff_study)
    _add_events(
        app,
        2,
        at=datetime(2020, 1, 1, 23, 59, tzinfo=UTC),
        action="test.old",
        object_type="patient",
        object_id=staff_study.patients["HEL-001"],
        site_id=staff_study.sites["FI-HEL"],
    )
    admin = sign_in("admin")

    def shown(**query):
        response = admin.get("/staff/audit", query_string=query)
        assert response.status_code == 200, response.text
        return _rows(response.text)

    by_action = shown(action="patient.registered")
    assert len(by_action) == 3 and all("patient.registered" in r for r in by_action)
    by_actor = shown(actor="anna.nurse@upp.example.org")
    assert _actions(by_actor) == ["patient.surgery_date_changed"]
    assert [r for r in shown(actor="operator") if "patient.registered" in r]
    assert all("Operator (cli)" in r for r in shown(actor="operator"))
    by_site = shown(site="FI-HEL")
    assert by_site and all(" FI-HEL " in f"{r} " for r in by_site)
    assert not [r for r in by_site if "UPP-" in r]
    by_patient = shown(object_type="patient", object_ref="hel-001")
    assert _actions(by_patient) == ["patient.registered", "test.old", "test.old"]
    by_staff = shown(object_type="staff_user", object_ref="admin@example.org")
    assert set(_actions(by_staff)) == {"user.created", "staff.signed_in"}
    that_day = shown(date_from="2020-01-01", date_to="2020-01-01")
    assert [r.split()[0] for r in that_day] == ["2020-01-01", "2020-01-01"]
    assert shown(date_to="2019-12-31") == []


def test_filters_that_name_nothing_are_refused_next_to_their_field(app, sign_in, staff_study):
    admin = sign_in("admin")
    unknown = admin.get("/staff/audit?object_type=patient&object_ref=UPP-999")
    assert unknown.status_code == 400
    assert re.search(
        r'id="object_ref-errors">\s*<li>No patient has the study ID UPP-999.</li>', unknown.text
    )
    assert "<tbody>" not in unknown.text
    backwards = admin.get("/staff/audit?date_from=2026-02-02&date_to=2026-02-01")
    assert backwards.status_code == 400
    assert re.search(
        r'id="date_to-errors">\s*<li>The end date is before the start date.</li>', backwards.text
    )
    no_type = admin.get("/staff/audit?object_ref=UPP-001")
    assert "Choose the object type too." in no_type.text
    bad_actor = admin.get("/staff/audit?actor=someone@example.org")
    assert bad_actor.status_code == 400
    assert re.search(r'id="actor-errors">', bad_actor.text)
    refused = _download(admin, unknown.text, object_type="patient", object_ref="UPP-999")
    assert refused.status_code == 400
    assert "No patient has the study ID UPP-999." in refused.text
    exported = read(
        app, lambda s: s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.exported"))
    )
    assert list(exported) == []


def test_the_events_come_in_pages_of_fifty_newest_first(app, sign_in, staff_study):
    start = datetime(2021, 5, 1, 8, 0, tzinfo=UTC)
    _add_events(app, 120, at=start, action="test.paged")
    admin = sign_in("admin")
    first = admin.get("/staff/audit?action=test.paged")
    times = [r.split()[1] for r in _rows(first.text)]
    assert "120 events match." in first.text
    assert len(times) == 50 and times[0] == "08:01:59" and times[-1] == "08:01:10"
    older = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    assert "action=test.paged" in older
    second = admin.get(older)
    assert [r.split()[1] for r in _rows(second.text)][0] == "08:01:09"
    third = admin.get(
        re.search(r'href="([^"]+)" rel="next"', second.text).group(1).replace("&amp;", "&")
    )
    last_times = [r.split()[1] for r in _rows(third.text)]
    assert len(last_times) == 20 and last_times[-1] == "08:00:00"
    assert 'rel="next"' not in third.text
    back = admin.get(
        re.search(r'href="([^"]+)" rel="prev"', third.text).group(1).replace("&amp;", "&")
    )
    assert _rows(back.text) == _rows(second.text)


def test_a_page_costs_the_same_number_of_queries_however_many_rows(app, sign_in, staff_study):
    admin = sign_in("admin")
    engine = app.extensions["pro_db"]["engine"]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def queries(url: str) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert admin.get(url).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    def spread(count, at):
        # events naming every kind of thing the page names: staff, patients, time points, sites
        ids = read(app, lambda s: list(s.scalars(select(Assessment.id))))
        for n in range(count):
            code, study_id = [("SE-UPP", "UPP-001"), ("FI-HEL", "HEL-001")][n % 2]
            _add_events(
                app,
                1,
                at=at + timedelta(minutes=n),
                object_type=["patient", "assessment", "staff_user", "site"][n % 4],
                object_id=[
                    staff_study.patients[study_id],
                    ids[n % len(ids)],
                    staff_study.users["nurse_hel"],
                    staff_study.sites[code],
                ][n % 4],
                site_id=staff_study.sites[code],
            )

    spread(4, datetime(2022, 1, 1, tzinfo=UTC))
    few = queries("/staff/audit")
    spread(60, datetime(2023, 1, 1, tzinfo=UTC))
    assert queries("/staff/audit") == few


def test_the_audit_trail_never_shows_phone_numbers_or_tokens(app, sign_in, staff_study):
    _move_surgery(app, staff_study, "UPP-002", days=-3)
    client = sign_in("admin")
    page = client.get("/staff/audit")
    csv_file = _download(client, page.text)
    token_hashes = read(
        app, lambda s: [h for h in s.scalars(select(Assessment.token_hash)) if h is not None]
    )
    with client.session_transaction() as cookie:
        session_token = cookie["staff_session"]
    for body in (page.data, csv_file.data):
        for phone in PHONES:
            assert phone.encode() not in body
        assert session_token.encode() not in body
        for token_hash in token_hashes:
            assert token_hash.encode() not in body
    assert b"UPP-002" in page.data and b"UPP-002" in csv_file.data


def test_an_inspector_downloads_the_filtered_trail_as_csv(app, sign_in, staff_study):
    _move_surgery(app, staff_study, reason='=HYPERLINK("https://example.org")')
    admin = sign_in("admin")
    page = admin.get("/staff/audit?object_type=patient&object_ref=UPP-001")
    response = _download(admin, page.text, object_type="patient", object_ref="UPP-001")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    today = utcnow().strftime("%Y-%m-%d")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="audit-trail-{today}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["action"] for r in rows] == ["patient.registered", "patient.surgery_date_changed"]
    change = rows[1]
    assert change["object"] == "UPP-001" and change["site"] == "SE-UPP"
    assert change["actor"] == "anna.nurse@upp.example.org"
    assert change["actor_type"] == "staff"
    assert '"surgery_date"' in change["before"]
    assert change["reason"] == '\'=HYPERLINK("https://example.org")'  # not a live formula
    assert datetime.fromisoformat(change["at_utc"]).tzinfo is not None

    actor_id, after = read(
        app,
        lambda s: s.execute(
            select(AuditEvent.actor_id, AuditEvent.after).where(
                AuditEvent.action == "audit.exported"
            )
        ).one(),
    )
    assert actor_id == str(staff_study.users["admin"])
    assert after["filters"]["object"] == "UPP-001"
    everything = _download(admin, page.text)
    last = list(csv.DictReader(io.StringIO(everything.text)))[-1]
    assert last["action"] == "audit.exported"  # the download itself is in the trail


def test_dates_are_utc_calendar_days(app, sign_in, staff_study):
    # 23:30 UTC on 31 December is already 1 January in Stockholm; the filter goes by UTC.
    _add_events(app, 1, at=datetime(2024, 12, 31, 23, 30, tzinfo=UTC), action="test.utc")
    admin = sign_in("admin")
    assert len(_rows(admin.get("/staff/audit?action=test.utc&date_to=2024-12-31").text)) == 1
    assert _rows(admin.get("/staff/audit?action=test.utc&date_from=2025-01-01").text) == []
    assert date(2024, 12, 31).isoformat() in admin.get("/staff/audit?action=test.utc").text
