"""The completion board: who sees which site, statuses, messages, flags, filters, paging and a
number of SQL statements that does not grow with the number of patients."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import TypeVar

import pytest
import time_machine
from sqlalchemy import event, select

from pro_service.answering.responses import complete_assessment
from pro_service.audit import Actor
from pro_service.extensions import db
from pro_service.models import (
    Assessment,
    AssessmentStatus,
    MessageStatus,
    OutboxMessage,
    Patient,
)
from pro_service.patients.board import (
    DISPLAY_STATUSES,
    BoardFilterError,
    BoardFilters,
    display_status_sql,
    load_board,
    status_condition,
)
from pro_service.scheduling.assessments import display_status, local_today, update_windows

from builders import build_patient
from pages import read

T = TypeVar("T")

# "Today" of the timeline tests, at noon in Uppsala; the staff sign in at that time too (a
# signed session cookie from the future is refused).
D = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------


def write(app, change: Callable[..., T]) -> T:  # type: ignore[no-untyped-def]
    """Run ``change(session)`` in a fresh application context and commit."""
    with app.app_context():
        try:
            result = change(db.session)
            db.session.commit()
            return result
        finally:
            db.session.close()


class _Tables(HTMLParser):
    """The board table as text: header cells and rows (each a list of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            (self.header if self._in_head else self.rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._cell is not None:
            self._cell.append(data)


def board_table(html: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """(column headers, {study ID: {header: cell text}}) of the board on the page."""
    parser = _Tables()
    parser.feed(html)
    rows = {row[0]: dict(zip(parser.header, row, strict=True)) for row in parser.rows if row}
    return parser.header, rows


def counts_of(html: str) -> dict[str, int]:
    """The status counts at the top of the board: {"Overdue": 1, ...}."""
    found = re.findall(r"<dt>.*?</span>\s*([^<]+)</dt><dd>(\d+)</dd>", html)
    return {label.strip(): int(n) for label, n in found}


# --- who sees what ---------------------------------------------------------------------------


def test_a_nurse_sees_her_own_site_only(sign_in, staff_study):
    client = sign_in("nurse_upp")
    page = client.get("/staff/board")
    assert page.status_code == 200
    _header, rows = board_table(page.text)
    assert set(rows) == {"UPP-001", "UPP-002"}
    assert "Completion board: Uppsala" in page.text
    assert 'name="site"' in page.text and '<select id="board-site"' not in page.text
    assert "/staff/board" in client.get("/staff/").headers["Location"]

    hel = staff_study.sites["FI-HEL"]
    assert client.get(f"/staff/board?site={hel}").status_code == 404
    assert client.get("/staff/board?site=999999").status_code == 404
    assert client.get("/staff/board?site=abc").status_code == 404

    hel_page = sign_in("nurse_hel").get("/staff/board")
    assert set(board_table(hel_page.text)[1]) == {"HEL-001"}


def test_an_investigator_for_all_sites_chooses_the_site(sign_in, staff_study):
    client = sign_in("investigator")
    first = client.get("/staff/board")
    assert first.status_code == 200
    assert '<select id="board-site" name="site">' in first.text
    assert "SE-UPP – Uppsala" in first.text and "FI-HEL – Helsinki" in first.text
    assert set(board_table(first.text)[1]) == {"HEL-001"}  # FI-HEL comes first by code
    upp = client.get(f"/staff/board?site={staff_study.sites['SE-UPP']}")
    assert set(board_table(upp.text)[1]) == {"UPP-001", "UPP-002"}

    admin = sign_in("admin").get(f"/staff/board?site={staff_study.sites['SE-UPP']}")
    assert admin.status_code == 200


def test_a_site_investigator_and_a_data_manager_get_404(sign_in, staff_study):
    client = sign_in("investigator_upp")
    assert client.get(f"/staff/board?site={staff_study.sites['FI-HEL']}").status_code == 404
    assert client.get("/staff/board").status_code == 200
    data_manager = sign_in("data_manager")
    assert data_manager.get("/staff/board").status_code == 404
    assert data_manager.get(f"/staff/board?site={staff_study.sites['SE-UPP']}").status_code == 404


def test_the_board_needs_a_sign_in(client, staff_study):
    response = client.get("/staff/board")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login")


# --- statuses --------------------------------------------------------------------------------


@pytest.fixture
def timeline(app, staff_study):  # type: ignore[no-untyped-def]
    """UPP-010, included 120 days before D and operated 95 days before D, with its baseline
    completed, its pre-operative time point missed and its 3-month time point open since D-8."""
    vault = app.extensions["vault"]
    registry = app.extensions["instruments"]

    def register(session):  # type: ignore[no-untyped-def]
        from pro_service.models import Site

        site = session.get(Site, staff_study.sites["SE-UPP"])
        return build_patient(
            app,
            session,
            now=D - timedelta(days=121),
            actor=Actor.operator(),
            site=site,
            study_id="UPP-010",
            phone="070-174 06 10",
            language="sv",
            inclusion_date=(D - timedelta(days=120)).date(),
            surgery_date=(D - timedelta(days=95)).date(),
        ).id

    patient_id = write(app, register)

    def at(moment: datetime, change: Callable[..., object]) -> None:
        with time_machine.travel(moment, tick=False):
            write(app, change)

    def timepoint(session, key: str) -> Assessment:  # type: ignore[no-untyped-def]
        return session.scalar(
            select(Assessment).where(
                Assessment.patient_id == patient_id, Assessment.timepoint == key
            )
        )

    def complete_baseline(session):  # type: ignore[no-untyped-def]
        now = D - timedelta(days=119)
        update_windows(session, now=now, vault=vault)
        assert timepoint(session, "baseline").status == "open"
        assert complete_assessment(
            session,
            now=now + timedelta(hours=2),
            assessment=timepoint(session, "baseline"),
            registry=registry,
            language="sv",
            actor=Actor.system("test"),
        )

    def open_m3_with_messages(session):  # type: ignore[no-untyped-def]
        now = D - timedelta(days=8)
        update_windows(session, now=now, vault=vault)
        m3 = timepoint(session, "m3")
        assert m3.status == "open"
        for kind, status, hours in (
            ("invitation", MessageStatus.DELIVERED, 0),
            ("reminder", MessageStatus.SENT, 1),
            ("reminder", MessageStatus.CANCELLED, 2),  # never went: neither counted nor shown
        ):
            session.add(
                OutboxMessage(
                    patient_id=patient_id,
                    assessment_id=m3.id,
                    kind=kind,
                    language="sv",
                    scheduled_for=now + timedelta(hours=hours),
                    status=status.value,
                    attempts=1,
                    created_at=now + timedelta(hours=hours),
                    updated_at=now + timedelta(hours=hours),
                )
            )

    at(D - timedelta(days=119), complete_baseline)
    at(
        D - timedelta(days=100),
        lambda s: update_windows(s, now=D - timedelta(days=100), vault=vault),
    )
    at(D - timedelta(days=8), open_m3_with_messages)
    return patient_id


def test_each_time_point_shows_its_status_with_a_symbol(app, sign_in, timeline):
    labels = {tp.key: tp.label["en"] for tp in app.extensions["schedule"].timepoints}
    with time_machine.travel(D - timedelta(days=8), tick=False):
        header, rows = board_table(sign_in("nurse_upp").get("/staff/board").text)
    # The main course; the follow-up track of patients not operated shows where there are any
    # (test_a_follow_up_track_has_columns_where_the_site_has_its_patients).
    assert header[3:] == [
        labels[k] for k in ("baseline", "preop", "m3", "m6", "m9", "m12", "m18", "m24")
    ]
    row = rows["UPP-010"]
    baseline_done = (D - timedelta(days=119) + timedelta(hours=2)).date().isoformat()
    assert row[labels["baseline"]].startswith("✓ Completed")
    assert f"Done {baseline_done}" in row[labels["baseline"]]
    assert row[labels["preop"]].startswith("✗ Missed")
    assert row[labels["m3"]].startswith("◇ Open")
    assert "SMS sent" in row[labels["m3"]] and "1 reminder sent" in row[labels["m3"]]
    assert row[labels["m6"]].startswith("○ Upcoming")
    assert row["Participation"] == "Active"

    with time_machine.travel(D, tick=False):
        page = sign_in("nurse_upp").get("/staff/board").text
    row = board_table(page)[1]["UPP-010"]
    assert row[labels["m3"]].startswith("! Overdue")
    assert "Due " in row[labels["m3"]]
    # the counts: UPP-001 and UPP-002 (never opened) are all upcoming
    counts = counts_of(page)
    assert counts["Completed"] == 1 and counts["Missed"] == 1 and counts["Overdue"] == 1
    assert counts["Open"] == 0 and counts["Upcoming"] == 5 + 8 + 8


def test_the_sql_statuses_agree_with_display_status(app, staff_study):
    """Every stored status on a due date before, on and after today: the board's SQL
    expression and its filter conditions give what ``display_status`` gives."""
    from pro_service.models import Site

    def check(session):  # type: ignore[no-untyped-def]
        site = session.get(Site, staff_study.sites["SE-UPP"])
        now = D
        today = local_today(site, now)
        patients = [
            build_patient(
                app,
                session,
                now=now,
                actor=Actor.operator(),
                site=site,
                study_id=f"UPP-2{i:02d}",
                phone=None,
                language="sv",
                inclusion_date=today - timedelta(days=400),
                surgery_date=today - timedelta(days=380),
            )
            for i in range(3)
        ]
        assessments = [a for p in patients for a in p.assessments]
        combos = [(s.value, d) for s in AssessmentStatus for d in (-1, 0, 1)]
        assert len(assessments) >= len(combos)
        for assessment, (status, offset) in zip(assessments, combos, strict=False):
            assessment.status = status
            assessment.due_date = today + timedelta(days=offset)
            assessment.window_opens = assessment.due_date - timedelta(days=14)
            assessment.window_closes = assessment.due_date + timedelta(days=14)
        session.flush()
        ids = [a.id for a in assessments[: len(combos)]]
        expected = {a.id: display_status(a, today) for a in assessments[: len(combos)]}
        assert set(expected.values()) == set(DISPLAY_STATUSES)
        got = dict(
            session.execute(
                select(Assessment.id, display_status_sql(today)).where(Assessment.id.in_(ids))
            ).all()
        )
        assert got == expected
        for status in DISPLAY_STATUSES:
            chosen = set(
                session.scalars(
                    select(Assessment.id).where(
                        Assessment.id.in_(ids), status_condition(status, today)
                    )
                )
            )
            assert chosen == {i for i, s in expected.items() if s == status}, status

    read(app, check)


# --- flags, filters, counts ------------------------------------------------------------------


def _message(patient_id: int, status: MessageStatus, at: datetime) -> OutboxMessage:
    return OutboxMessage(
        patient_id=patient_id,
        assessment_id=None,
        kind="confirmation",
        language="sv",
        scheduled_for=at,
        status=status.value,
        attempts=1,
        created_at=at,
        updated_at=at,
    )


def test_flags_show_opted_out_and_bad_numbers(app, sign_in, staff_study):
    ids = staff_study.patients
    extra = {}

    def arrange(session):  # type: ignore[no-untyped-def]
        from pro_service.models import Site

        site = session.get(Site, staff_study.sites["SE-UPP"])
        for study_id in ("UPP-003", "UPP-004"):
            extra[study_id] = build_patient(
                app,
                session,
                now=D,
                actor=Actor.operator(),
                site=site,
                study_id=study_id,
                phone="070-174 06 99",
                language="sv",
                inclusion_date=D.date(),
            ).id
        session.get(Patient, ids["UPP-001"]).opted_out = True
        # UPP-002: a message failed, nothing delivered since: bad number
        session.add(_message(ids["UPP-002"], MessageStatus.FAILED, D))
        # UPP-003: a failure, then a delivery: the number works
        session.add(_message(extra["UPP-003"], MessageStatus.FAILED, D))
        session.flush()
        session.add(_message(extra["UPP-003"], MessageStatus.DELIVERED, D + timedelta(hours=1)))
        # UPP-004: the number is marked invalid
        session.get(Patient, extra["UPP-004"]).phone_invalid = True

    write(app, arrange)
    client = sign_in("nurse_upp")
    rows = board_table(client.get("/staff/board").text)[1]
    assert rows["UPP-001"]["Flags"] == "Opted out"
    assert rows["UPP-002"]["Flags"] == "Bad number"
    assert rows["UPP-003"]["Flags"] == ""
    assert rows["UPP-004"]["Flags"] == "Bad number"

    bad = board_table(client.get("/staff/board?bad_number=y").text)[1]
    assert set(bad) == {"UPP-002", "UPP-004"}
    opted = client.get("/staff/board?opted_out=y").text
    assert set(board_table(opted)[1]) == {"UPP-001"}
    assert "1 patient matches" in opted
    both = client.get("/staff/board?opted_out=y&bad_number=y").text
    assert "No patients match these filters." in both
    assert "0 patients match" in both


def test_a_missed_time_point_without_a_reason_is_a_task_on_the_board(app, sign_in, staff_study):
    ids = staff_study.patients

    def miss(session):  # type: ignore[no-untyped-def]
        first = session.scalars(
            select(Assessment)
            .where(Assessment.patient_id == ids["UPP-002"])
            .order_by(Assessment.due_date)
        ).first()
        first.status = AssessmentStatus.EXPIRED.value
        return first.id

    missed = write(app, miss)
    client = sign_in("nurse_upp")
    page = client.get("/staff/board?lang=en").text
    rows = board_table(page)[1]
    assert rows["UPP-002"]["Flags"] == "Reason needed"
    assert rows["UPP-001"]["Flags"] == ""
    assert f'href="/staff/assessments/{missed}#missing-reason-title">Reason needed</a>' in page
    tasks = client.get("/staff/board?needs_reason=y&lang=en").text
    assert set(board_table(tasks)[1]) == {"UPP-002"}

    write(app, lambda s: setattr(s.get(Assessment, missed), "missing_reason", "too-ill"))
    done = client.get("/staff/board?needs_reason=y&lang=en").text
    assert "No patients match these filters." in done
    assert board_table(client.get("/staff/board?lang=en").text)[1]["UPP-002"]["Flags"] == ""


def test_filters_narrow_rows_columns_and_counts(app, sign_in, timeline):
    m3 = app.extensions["schedule"].timepoint("m3").label["en"]
    with time_machine.travel(D, tick=False):
        client = sign_in("nurse_upp")
        overdue = client.get("/staff/board?status=overdue").text
        only_m3 = client.get("/staff/board?timepoint=m3").text
        overdue_flag = client.get("/staff/board?overdue=y").text
        missed_at_m3 = client.get("/staff/board?status=missed&timepoint=m3").text
        withdrawn = client.get("/staff/board?patient_status=withdrawn").text
    assert set(board_table(overdue)[1]) == {"UPP-010"}
    assert counts_of(overdue)["Overdue"] == 1 and counts_of(overdue)["Upcoming"] == 5
    header, rows = board_table(only_m3)
    assert header == ["Study ID", "Participation", "Flags", m3]
    assert set(rows) == {"UPP-010", "UPP-001", "UPP-002"}
    assert counts_of(only_m3) == {
        "Upcoming": 2,
        "Open": 0,
        "In progress": 0,
        "Overdue": 1,
        "Completed": 0,
        "Partly answered": 0,
        "Missed": 0,
        "Cancelled": 0,
    }
    assert set(board_table(overdue_flag)[1]) == {"UPP-010"}
    assert "No patients match these filters." in missed_at_m3
    assert "No patients match these filters." in withdrawn
    # the filter form keeps what was chosen
    assert re.search(r'<option selected value="overdue">|<option value="overdue" selected', overdue)


def test_unknown_filter_values_are_refused_naming_the_field(sign_in, staff_study):
    client = sign_in("nurse_upp")
    bad_status = client.get("/staff/board?status=lost")
    assert bad_status.status_code == 400
    assert 'id="status-errors"' in bad_status.text
    assert "Please correct the fields marked below." in bad_status.text
    assert "<table" not in bad_status.text
    bad_tp = client.get("/staff/board?timepoint=m99")
    assert bad_tp.status_code == 400 and 'id="timepoint-errors"' in bad_tp.text
    bad_page = client.get("/staff/board?page=two")
    assert bad_page.status_code == 400
    assert "Page: the page number must be a whole number, 1 or more." in bad_page.text


def test_the_service_names_the_field_of_a_bad_filter(app, staff_study):
    from pro_service.models import Site

    def check(session):  # type: ignore[no-untyped-def]
        site = session.get(Site, staff_study.sites["SE-UPP"])
        keys = [tp.key for tp in app.extensions["schedule"].timepoints]
        for filters, field in (
            (BoardFilters(status="lost"), "status"),
            (BoardFilters(timepoint="m99"), "timepoint"),
            (BoardFilters(patient_status="asleep"), "patient_status"),
        ):
            with pytest.raises(BoardFilterError) as raised:
                load_board(session, now=D, site=site, timepoints=keys, filters=filters)
            assert raised.value.field == field
        with pytest.raises(BoardFilterError) as raised:
            load_board(session, now=D, site=site, timepoints=keys, page=0)
        assert raised.value.field == "page"

    read(app, check)


# --- paging and the number of statements ------------------------------------------------------


def _add_patients(app, staff_study, numbers: range) -> None:  # type: ignore[no-untyped-def]
    """Patients UPP-1nn with a surgery date, some open time points and messages each."""

    def add(session):  # type: ignore[no-untyped-def]
        from pro_service.models import Site

        site = session.get(Site, staff_study.sites["SE-UPP"])
        for n in numbers:
            patient = build_patient(
                app,
                session,
                now=D,
                actor=Actor.operator(),
                site=site,
                study_id=f"UPP-{100 + n}",
                phone=None,
                language="sv",
                inclusion_date=D.date() - timedelta(days=n),
                surgery_date=D.date() + timedelta(days=10),
            )
            first = patient.assessments[0]
            first.status = AssessmentStatus.OPEN.value if n % 2 else AssessmentStatus.EXPIRED.value
            session.add(_message(patient.id, MessageStatus.FAILED, D))
            message = _message(patient.id, MessageStatus.DELIVERED, D)
            message.assessment_id = first.id
            message.kind = "invitation"
            session.add(message)

    write(app, add)


def test_the_board_pages_fifty_patients_in_study_id_order(app, sign_in, staff_study):
    _add_patients(app, staff_study, range(60))  # 62 patients with UPP-001 and UPP-002
    client = sign_in("nurse_upp")
    first = client.get("/staff/board").text
    rows = list(board_table(first)[1])
    assert len(rows) == 50
    assert rows[:3] == ["UPP-001", "UPP-002", "UPP-100"] and rows == sorted(rows)
    assert "Patients 1–50 of 62, by study ID" in first
    assert 'rel="next"' in first and 'rel="prev"' not in first
    site = staff_study.sites["SE-UPP"]
    assert f'href="/staff/board?site={site}&amp;page=2"' in first

    second = client.get(f"/staff/board?site={site}&page=2").text
    assert list(board_table(second)[1]) == [f"UPP-{n}" for n in range(148, 160)]
    assert "Patients 51–62 of 62, by study ID" in second
    assert 'aria-current="page">2<' in second and 'rel="next"' not in second
    # a page past the end shows the last one
    assert list(board_table(client.get("/staff/board?page=9").text)[1]) == list(
        board_table(second)[1]
    )
    # filters are kept by the page links
    filtered = client.get(f"/staff/board?site={site}&status=missed").text
    assert "30 patients match" in filtered
    assert "page=2" not in filtered
    assert all(r.startswith("UPP-1") for r in board_table(filtered)[1])


def test_the_number_of_statements_does_not_grow_with_the_patients(app, sign_in, staff_study):
    engine = app.extensions["pro_db"]["engine"]
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    def measure(url: str) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.get(url)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200
        return len(statements)

    with time_machine.travel(D, tick=False):
        client = sign_in("nurse_upp")
        _add_patients(app, staff_study, range(3))  # 5 patients
        client.get("/staff/board")  # warm-up
        few = measure("/staff/board")
        assert len(board_table(client.get("/staff/board").text)[1]) == 5
        _add_patients(app, staff_study, range(3, 58))  # 60 patients
        many = measure("/staff/board")
        second_page = measure("/staff/board?page=2&status=missed")
    assert few == many == second_page, statements
    assert many <= 12


def test_a_follow_up_track_has_columns_where_the_site_has_its_patients(app, sign_in, staff_study):
    """Helsinki has nobody not operated: the usual eight columns. Once Uppsala records one, its
    board adds the follow-up after the decision, with the patient's 3-month time point."""
    from pro_service.clock import utcnow
    from pro_service.extensions import db
    from pro_service.models import Patient

    from builders import leave

    with app.app_context():
        patient = db.session.get(Patient, staff_study.patients["UPP-002"])
        leave(app, db.session, patient, "not_operated", now=utcnow(), reason="progression")
        db.session.commit()
    header, rows = board_table(sign_in("nurse_upp").get("/staff/board?lang=en").text)
    assert header[-3:] == [
        "3 months after the decision not to operate",
        "6 months after the decision not to operate",
        "12 months after the decision not to operate",
    ]
    assert rows["UPP-002"]["3 months after the decision not to operate"].startswith("○ Upcoming")
    assert rows["UPP-001"]["3 months after the decision not to operate"] == "–Not scheduled yet"
    helsinki, _ = board_table(sign_in("nurse_hel").get("/staff/board?lang=en").text)
    assert len(helsinki) == 3 + 8
