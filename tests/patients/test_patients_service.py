from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from pro_service.audit import Actor
from pro_service.models import Assessment, AuditEvent
from pro_service.patients.registry import PatientDataError
from pro_service.scheduling.assessments import update_windows

from builders import build_patient, build_site


@pytest.fixture
def site(session, now):
    site = build_site(
        session,
        now=now,
        code="SE-UPP",
        study_id_pattern=r"UPP-\d{3}",
    )
    session.commit()
    return site


@pytest.fixture
def register(app, session, now, site):
    def _register(**kwargs):
        fields = {
            "study_id": "UPP-001",
            "phone": "070-174 06 10",
            "language": "sv",
            "inclusion_date": date(2026, 3, 10),
            "surgery_date": None,
        }
        fields.update(kwargs)
        return build_patient(
            app,
            session,
            now=now,
            actor=Actor.staff(1),
            site=site,
            **fields,
        )

    return _register


def test_registering_creates_the_inclusion_time_points_only(register):
    patient = register()
    assert [a.timepoint for a in patient.assessments] == ["baseline"]
    baseline = patient.assessments[0]
    assert (baseline.window_opens, baseline.due_date, baseline.window_closes) == (
        date(2026, 3, 10),
        date(2026, 3, 10),
        date(2026, 3, 24),
    )


def test_a_known_surgery_date_creates_every_time_point(register):
    patient = register(surgery_date=date(2026, 5, 4))
    assert [a.timepoint for a in patient.assessments] == [
        "baseline",
        "preop",
        "m3",
        "m6",
        "m9",
        "m12",
        "m18",
        "m24",
    ]


def test_the_phone_number_is_stored_encrypted_as_e164(app, register):
    patient = register()
    vault = app.extensions["vault"]
    assert vault.decrypt(patient.phone_encrypted) == "+46701740610"
    assert patient.phone_lookup == vault.phone_lookup("+46701740610")
    assert patient.phone_invalid is False


def test_registration_is_audited_without_the_phone_number(session, register):
    register()
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.registered"))
    assert event.after["study_id"] == "UPP-001"
    assert event.after["has_phone"] is True
    assert "1740610" not in str(event.after)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "08-123 456 78"}, "phone"),  # a landline cannot receive SMS
        ({"study_id": "XYZ-1"}, "study_id"),
        ({"surgery_date": date(2026, 3, 1)}, "surgery_date"),
        ({"language": "de"}, "language"),
    ],
)
def test_bad_patient_data_names_the_field_and_saves_nothing(session, register, kwargs, field):
    with pytest.raises(PatientDataError) as excinfo:
        register(**kwargs)
    assert excinfo.value.field == field
    session.rollback()
    assert session.scalars(select(Assessment)).all() == []


def test_a_duplicate_study_id_is_refused(session, register):
    register()
    session.commit()
    with pytest.raises(PatientDataError, match="already exists"):
        register(phone=None)


def test_windows_open_on_their_first_local_day_and_expire_after_their_last(
    app, session, register, now
):
    from datetime import UTC, datetime

    register(inclusion_date=date(2026, 3, 17))  # the day after `now`
    vault = app.extensions["vault"]
    # 22:59 UTC on 16 March is 23:59 in Stockholm: still the day before the window.
    changes = update_windows(session, now=datetime(2026, 3, 16, 22, 59, tzinfo=UTC), vault=vault)
    assert changes.opened == []
    changes = update_windows(session, now=datetime(2026, 3, 16, 23, 0, tzinfo=UTC), vault=vault)
    assert [a.timepoint for a in changes.opened] == ["baseline"]
    assert changes.opened[0].token_hash is not None
    last_day = date(2026, 3, 31)
    end = datetime(last_day.year, last_day.month, last_day.day, 21, 59, tzinfo=UTC)  # 23:59 CEST
    assert update_windows(session, now=end, vault=vault).expired == []
    expired = update_windows(session, now=end + timedelta(minutes=1), vault=vault).expired
    assert [a.timepoint for a in expired] == ["baseline"]
    assert expired[0].status == "expired"
    assert expired[0].token_encrypted is None
