"""Time points of a patient: creating them from the schedule, opening and closing their windows.

Dates (due, opens, closes) are calendar days in the site's time zone; a window is open from the
start of its opening day to the end of its closing day, local time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..crypto import Vault, hash_token, new_link_token
from ..models import FOLLOWED_STATUSES, Assessment, AssessmentStatus, Patient, Site
from .schedule import Schedule

OPEN_STATES = (AssessmentStatus.OPEN.value, AssessmentStatus.IN_PROGRESS.value)


def local_today(site: Site, now: datetime) -> date:
    return today_in(site.time_zone, now)


def today_in(time_zone: str, now: datetime) -> date:
    """The calendar day ``now`` falls on in ``time_zone`` (a site's)."""
    return now.astimezone(ZoneInfo(time_zone)).date()


def anchor_dates(patient: Patient) -> dict[str, date | None]:
    """The dates a patient's time points are counted from, by anchor (None: not known yet):
    the inclusion and surgery dates, and the dates recorded for the schedule's own anchors."""
    dates: dict[str, date | None] = {
        "inclusion": patient.inclusion_date,
        "surgery": patient.surgery_date,
    }
    dates.update((recorded.anchor, recorded.day) for recorded in patient.recorded_anchors)
    return dates


def create_assessments(
    session: Session, *, now: datetime, patient: Patient, schedule: Schedule
) -> list[Assessment]:
    """Create the patient's time points whose anchor date is known and that do not exist yet:
    the main course's for an active patient, its follow-up track's for a patient whose status
    has one (``Schedule.timepoints_for``).

    A window that closed before today (a patient registered late) opens today instead when the
    time point allows a late start and its bound has not passed (``TimePoint.late_window``). A
    window reaching past the time point's ``bound`` is cut there (``TimePoint.bounded``).
    """
    existing = {a.timepoint for a in patient.assessments}
    anchors = anchor_dates(patient)
    today = local_today(patient.site, now)
    created = []
    for tp in schedule.timepoints_for(patient.status):
        anchor_date = anchors.get(tp.anchor)
        if anchor_date is None or tp.key in existing:
            continue
        window = tp.window_for(anchor_date)
        if window.closes < today:
            window = tp.late_window(anchors, today, window) or window
        bounded = tp.bounded(window, anchors)
        assessment = Assessment(
            patient=patient,
            timepoint=tp.key,
            anchor=tp.anchor,
            due_date=(bounded or window).due,
            window_opens=window.opens,
            window_closes=(bounded or window).closes,
            instruments=list(tp.instruments),
            # Its bound falls before it opens (surgery on the day of inclusion): not expected.
            status=AssessmentStatus.SCHEDULED.value
            if bounded is not None
            else AssessmentStatus.CANCELLED.value,
            created_at=now,
            updated_at=now,
        )
        session.add(assessment)
        created.append(assessment)
    session.flush()
    return created


@dataclass(frozen=True)
class Outlook:
    """What a newly registered patient gets: time points opened late (their normal window had
    closed before registration) and time points already lost (their window has passed)."""

    opened_late: list[Assessment]
    lost: list[Assessment]


def registration_outlook(patient: Patient, schedule: Schedule, now: datetime) -> Outlook:
    today = local_today(patient.site, now)
    anchors = anchor_dates(patient)
    opened_late, lost = [], []
    for assessment in sorted(patient.assessments, key=lambda a: a.due_date):
        if (
            assessment.window_closes < today
            or assessment.status == AssessmentStatus.CANCELLED.value
        ):
            lost.append(assessment)  # passed, or its bound before it opens (surgery today)
            continue
        try:
            timepoint = schedule.timepoint(assessment.timepoint)
        except KeyError:
            continue
        anchor_date = anchors.get(timepoint.anchor)
        if anchor_date is not None and timepoint.window_for(anchor_date).closes < today:
            opened_late.append(assessment)
    return Outlook(opened_late, lost)


def issue_token(assessment: Assessment, vault: Vault) -> str:
    """Give the assessment a fresh link token; only its hash (and an encrypted copy) is kept."""
    token = new_link_token()
    assessment.token_hash = hash_token(token)
    assessment.token_encrypted = vault.encrypt(token)
    # A new link needs a new invitation (messaging/outbox.py queues it).
    assessment.invitation_queued_at = None
    assessment.next_reminder_on = None
    return token


def current_token(assessment: Assessment, vault: Vault) -> str | None:
    """The link token of an open assessment, for repeating it in a reminder."""
    if assessment.token_encrypted is None:
        return None
    return vault.decrypt(assessment.token_encrypted)


def close_link(assessment: Assessment) -> None:
    """Forget the encrypted token once the window is over; the hash stays for a kind answer.

    An attribute that already holds None is not set again: the assessment then stays
    unchanged in its session, which has nothing to flush for it (a completion writes both in
    its own UPDATE)."""
    if assessment.token_encrypted is not None:
        assessment.token_encrypted = None
    if assessment.next_reminder_on is not None:
        assessment.next_reminder_on = None  # no reminder for a closed time point


@dataclass(frozen=True)
class WindowChanges:
    opened: list[Assessment]
    expired: list[Assessment]  # closed without an answer: missed
    #: Closed with answers but no final submit: partial (the caller scores them by the half
    #: rule; nothing a patient answered is dropped).
    partial: list[Assessment] = field(default_factory=list)


def update_windows(session: Session, *, now: datetime, vault: Vault) -> WindowChanges:
    """Open time points whose window has started and close those whose window has ended: as
    partial when some answers were given, else as missed (expired).

    Two steps, so that the scheduler's pass costs next to nothing when nothing is due (the
    usual case, every minute of the day): the ids of the candidates come first from one index
    range each (``ix_assessments_status_window``, ``ix_assessments_status_closes``), with the
    latest of the sites' dates; only when there are any are they loaded, locked and checked
    against their own site's date. A join of all patients per site cost 170 ms a pass at 100,000
    patients even when it found nothing (``make bench-idle``).
    """
    opened: list[Assessment] = []
    expired: list[Assessment] = []
    partial: list[Assessment] = []
    sites = session.scalars(select(Site)).all()
    if not sites:
        return WindowChanges(opened=opened, expired=expired)
    todays = {site.id: local_today(site, now) for site in sites}
    latest = max(todays.values())
    to_open_ids = session.scalars(
        select(Assessment.id).where(
            Assessment.status == AssessmentStatus.SCHEDULED.value,
            Assessment.window_opens <= latest,
        )
    ).all()
    to_expire_ids = session.scalars(
        select(Assessment.id).where(
            Assessment.status.in_((AssessmentStatus.SCHEDULED.value, *OPEN_STATES)),
            Assessment.window_closes < latest,
        )
    ).all()
    for site in sites:
        today = todays[site.id]
        for chunk in _chunks(to_open_ids):
            to_open = session.scalars(
                select(Assessment)
                .join(Patient)
                .where(
                    Assessment.id.in_(chunk),
                    Patient.site_id == site.id,
                    Patient.status.in_(FOLLOWED_STATUSES),
                    Assessment.status == AssessmentStatus.SCHEDULED.value,
                    Assessment.window_opens <= today,
                    Assessment.window_closes >= today,
                )
                .with_for_update(skip_locked=True, of=Assessment)
            )
            for assessment in to_open:
                assessment.status = AssessmentStatus.OPEN.value
                assessment.opened_at = now
                assessment.updated_at = now
                issue_token(assessment, vault)
                opened.append(assessment)
        for chunk in _chunks(to_expire_ids):
            to_expire = session.scalars(
                select(Assessment)
                .join(Patient)
                .where(
                    Assessment.id.in_(chunk),
                    Patient.site_id == site.id,
                    Assessment.status.in_((AssessmentStatus.SCHEDULED.value, *OPEN_STATES)),
                    Assessment.window_closes < today,
                )
                .with_for_update(skip_locked=True, of=Assessment)
            )
            for assessment in to_expire:
                answered = assessment.status == AssessmentStatus.IN_PROGRESS.value
                assessment.status = (
                    AssessmentStatus.PARTIAL.value if answered else AssessmentStatus.EXPIRED.value
                )
                assessment.closed_at = now
                assessment.updated_at = now
                close_link(assessment)
                (partial if answered else expired).append(assessment)
    session.flush()
    return WindowChanges(opened=opened, expired=expired, partial=partial)


def _chunks(ids: Sequence[int], size: int = 5_000) -> Iterator[Sequence[int]]:
    """``ids`` in slices small enough for one IN list on every database (SQLite included)."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def display_status(assessment: Assessment, today: date) -> str:
    """What a nurse sees: upcoming, open, overdue, in_progress, completed, missed, cancelled."""
    status = assessment.status
    if status == AssessmentStatus.SCHEDULED.value:
        return "upcoming"
    if status == AssessmentStatus.EXPIRED.value:
        return "missed"
    if status in OPEN_STATES and today > assessment.due_date:
        return "overdue"
    return status
