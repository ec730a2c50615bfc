"""A demo study for a laptop: two sites, staff, and patients at various stages.

Running it again changes nothing and prints the same details. Development only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from .answering.entry import enter_answers
from .answering.missing import MissingReasons, record_missing_reason
from .answering.questionnaire import opt_out
from .answering.responses import (
    complete_assessment,
    instruments_of,
    save_answers,
    score_partial,
)
from .audit import Actor
from .crypto import Vault
from .instruments import InstrumentRegistry
from .models import AnswerMode, Assessment, AssessmentStatus, Patient, Site, StaffUser
from .patients.schedule_changes import end_participation
from .scheduling.assessments import (
    OPEN_STATES,
    current_token,
    issue_token,
    local_today,
    update_windows,
)
from .scheduling.schedule import Schedule
from .staff.accounts import create_site, create_user

DEMO_PASSWORD = "tulip harbour lantern"  # noqa: S105  (printed for the demo; dev only)

SITES = (
    # code, name, country, time zone, language, study ID pattern
    ("DEMO-STO", "Demo site Stockholm", "SE", "Europe/Stockholm", "sv", r"STO-\d{3}"),
    ("DEMO-HEL", "Demo site Helsinki", "FI", "Europe/Helsinki", "fi", r"HEL-\d{3}"),
)

USERS = (
    # email, role, site codes, all sites
    ("nurse.stockholm@example.org", "nurse", ("DEMO-STO",), False),
    ("nurse2.stockholm@example.org", "nurse", ("DEMO-STO",), False),
    ("nurse.helsinki@example.org", "nurse", ("DEMO-HEL",), False),
    ("investigator@example.org", "investigator", (), True),
    ("datamanager@example.org", "data_manager", (), True),
    ("admin@example.org", "admin", (), True),
)


@dataclass(frozen=True)
class DemoPatient:
    study_id: str
    site: str
    language: str
    phone: str | None
    included_days_ago: int
    surgery_days_from_today: int | None  # negative: surgery in the past
    completed: tuple[str, ...]  # time points answered in full
    partly_answered: tuple[str, ...] = ()  # time points answered in part
    opted_out: bool = False  # stopped the text messages from the questionnaire page


# Phone numbers: Sweden's range reserved for fiction (070-174 06 05..99) and a Finnish test range.
PATIENTS = (
    DemoPatient("STO-001", "DEMO-STO", "sv", "070-174 06 05", 0, None, ()),
    DemoPatient("STO-002", "DEMO-STO", "sv", "070-174 06 06", 30, 10, ("baseline",), ("preop",)),
    DemoPatient("STO-003", "DEMO-STO", "en", "070-174 06 07", 140, -100, ("baseline",)),
    DemoPatient("STO-004", "DEMO-STO", "sv", None, 2, None, ()),
    DemoPatient("HEL-001", "DEMO-HEL", "fi", "+358 40 123 4501", 0, None, ()),
    DemoPatient(
        "HEL-002",
        "DEMO-HEL",
        "fi",
        "+358 40 123 4502",
        400,
        -370,
        ("baseline", "preop", "m3", "m6", "m9"),
    ),
    DemoPatient("HEL-003", "DEMO-HEL", "en", "+358 40 123 4503", 0, None, ()),
    # Answered part of the "before surgery" questionnaire and never sent it: partial.
    DemoPatient(
        "STO-005", "DEMO-STO", "sv", "070-174 06 09", 200, -180, ("baseline",), ("preop",), True
    ),
    # Not operated: the disease progressed during chemotherapy (see _record_not_operated).
    DemoPatient("STO-006", "DEMO-STO", "sv", "070-174 06 10", 150, None, ("baseline",)),
)


@dataclass(frozen=True)
class DemoLink:
    study_id: str
    language: str
    timepoint: str
    status: str
    url: str


@dataclass(frozen=True)
class DemoReport:
    created: bool
    users: tuple[tuple[str, str], ...]  # (email, role)
    password: str
    links: tuple[DemoLink, ...]


def _answer_everything(
    rng: random.Random, assessment: Assessment, registry: InstrumentRegistry, fraction: float = 1.0
) -> dict[str, dict[int, int | None]]:
    answers: dict[str, dict[int, int | None]] = {}
    for instrument in instruments_of(assessment, registry):
        chosen: dict[int, int | None] = {}
        for number, item in instrument.items.items():
            if rng.random() <= fraction:
                # Mostly mild answers, as from a patient doing reasonably well.
                codes = list(item.codes)
                weights = [max(1, len(codes) - i) ** 2 for i in range(len(codes))]
                if item.max_code == 7:
                    codes.reverse()
                chosen[number] = rng.choices(codes, weights=weights)[0]
        answers[instrument.id] = chosen
    return answers


def seed_demo(
    session: Session,
    *,
    now: datetime,
    vault: Vault,
    schedule: Schedule,
    registry: InstrumentRegistry,
    base_url: str,
    missing_reasons: MissingReasons | None = None,
) -> DemoReport:
    actor = Actor.operator("demo")
    created = session.scalar(select(Site.id).where(Site.code == SITES[0][0])) is None
    if created:
        sites: dict[str, Site] = {}
        for code, name, country, tz, lang, pattern in SITES:
            sites[code] = create_site(
                session,
                now=now,
                actor=actor,
                code=code,
                name=name,
                country=country,
                time_zone=tz,
                default_language=lang,
                study_id_pattern=pattern,
            )
        for email, role, codes, all_sites in USERS:
            create_user(
                session,
                now=now,
                actor=actor,
                email=email,
                password=DEMO_PASSWORD,
                role=role,
                sites=[sites[c] for c in codes],
                all_sites=all_sites,
                language="fi" if "helsinki" in email else "sv",
            )
        from .patients.registry import register_patient

        rng = random.Random(20250299)  # noqa: S311  (demo data, not security)
        for spec in PATIENTS:
            site = sites[spec.site]
            today = local_today(site, now)
            surgery = (
                None
                if spec.surgery_days_from_today is None
                else today + timedelta(days=spec.surgery_days_from_today)
            )
            patient = register_patient(
                session,
                now=now,
                actor=actor,
                vault=vault,
                schedule=schedule,
                site=site,
                study_id=spec.study_id,
                phone=spec.phone,
                language=spec.language,
                inclusion_date=today - timedelta(days=spec.included_days_ago),
                surgery_date=surgery,
            )
            if spec.opted_out:
                opt_out(session, now=now, patient_id=patient.id)
            for assessment in patient.assessments:
                done = assessment.timepoint in spec.completed
                partly = assessment.timepoint in spec.partly_answered
                if not (done or partly):
                    continue
                when = _local_noon(min(assessment.due_date, today), site.time_zone)
                if partly:
                    when = min(when, now)
                assessment.status = AssessmentStatus.OPEN.value
                assessment.opened_at = when
                issue_token(assessment, vault)
                answers = _answer_everything(rng, assessment, registry, 1.0 if done else 0.3)
                for instrument in instruments_of(assessment, registry):
                    save_answers(
                        session,
                        now=when,
                        assessment=assessment,
                        instrument=instrument,
                        language=spec.language,
                        answers=answers[instrument.id],
                    )
                if done:
                    complete_assessment(
                        session,
                        now=when,
                        assessment=assessment,
                        registry=registry,
                        language=spec.language,
                        actor=Actor("patient", str(patient.id)),
                    )
        changes = update_windows(session, now=now, vault=vault)
        for assessment in changes.partial:
            score_partial(session, now=now, assessment=assessment, registry=registry)
        session.flush()
        if missing_reasons is not None:
            _record_a_missing_reason(session, now=now, reasons=missing_reasons)
        _enter_a_paper_form(session, now=now, schedule=schedule, registry=registry, rng=rng)
        _record_not_operated(session, now=now, schedule=schedule, vault=vault, registry=registry)

    users = tuple(
        (u.email, u.role)
        for u in session.scalars(
            select(StaffUser)
            .where(StaffUser.email.in_([u[0] for u in USERS]))
            .order_by(StaffUser.id)
        )
    )
    links = []
    rows = session.execute(
        select(Assessment, Patient)
        .join(Patient)
        .where(
            Patient.study_id.in_([p.study_id for p in PATIENTS]),
            Assessment.status.in_(OPEN_STATES),
        )
        .order_by(Patient.study_id, Assessment.due_date)
    )
    for assessment, patient in rows:
        token = current_token(assessment, vault)
        if token is None:
            continue
        site_today = local_today(patient.site, now)
        status = "overdue" if site_today > assessment.due_date else assessment.status
        links.append(
            DemoLink(
                patient.study_id,
                patient.language,
                assessment.timepoint,
                status,
                f"{base_url}/q/{token}",
            )
        )
    return DemoReport(created=created, users=users, password=DEMO_PASSWORD, links=tuple(links))


def _record_a_missing_reason(session: Session, *, now: datetime, reasons: MissingReasons) -> None:
    """STO-003's missed "before surgery" form carries a reason (the patient was in hospital); the
    other missed time points are left for the nurses' task list on the board."""
    missed = session.scalars(
        select(Assessment)
        .join(Patient)
        .where(
            Patient.study_id == "STO-003",
            Assessment.status == AssessmentStatus.EXPIRED.value,
        )
        .order_by(Assessment.due_date)
    ).first()
    if missed is not None:
        record_missing_reason(
            session,
            now=now,
            actor=Actor.operator("demo"),
            reasons=reasons,
            assessment=missed,
            code="in-hospital",
        )


def _enter_a_paper_form(
    session: Session,
    *,
    now: datetime,
    schedule: Schedule,
    registry: InstrumentRegistry,
    rng: random.Random,
) -> None:
    """STO-003 answered the 3-month questionnaire on paper three days ago (two lines left
    blank); a nurse entered it."""
    assessment = session.scalars(
        select(Assessment)
        .join(Patient)
        .where(Patient.study_id == "STO-003", Assessment.timepoint == "m3")
    ).first()
    if assessment is None or assessment.status not in (
        AssessmentStatus.OPEN.value,
        AssessmentStatus.SCHEDULED.value,
    ):
        return
    answers: dict[int, int | None] = {}
    for chosen in _answer_everything(rng, assessment, registry).values():
        answers |= chosen
    answers[11] = None
    answers[40] = None
    today = local_today(assessment.patient.site, now)
    enter_answers(
        session,
        now=now,
        actor=Actor.operator("demo"),
        assessment=assessment,
        schedule=schedule,
        registry=registry,
        mode=AnswerMode.PAPER.value,
        language="en",
        answered_on=max(assessment.window_opens, today - timedelta(days=3)),
        answers=answers,
    )


def _record_not_operated(
    session: Session,
    *,
    now: datetime,
    schedule: Schedule,
    vault: Vault,
    registry: InstrumentRegistry,
) -> None:
    """STO-006 was not operated: the disease progressed during chemotherapy. The decision was
    taken 100 days ago, so the follow-up track's 3-month time point is open now."""
    patient = session.scalars(select(Patient).where(Patient.study_id == "STO-006")).first()
    if patient is None or patient.status != "active":
        return
    end_participation(
        session,
        now=now,
        actor=Actor.operator("demo"),
        schedule=schedule,
        vault=vault,
        patient=patient,
        status="not_operated",
        status_date=local_today(patient.site, now) - timedelta(days=100),
        reason="Progression during chemotherapy: no surgery (multidisciplinary conference).",
        registry=registry,
    )


def _local_noon(day: date, tz: str) -> datetime:
    from datetime import UTC

    return datetime.combine(day, time(12, 0), tzinfo=ZoneInfo(tz)).astimezone(UTC)
