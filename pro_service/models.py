"""The data model (SQLAlchemy 2.x typed ORM). Every schema change comes with an Alembic migration.

Times are stored as aware UTC datetimes; dates (inclusion, surgery, due dates) are calendar dates
in the site's time zone. Identity (the phone number) is kept apart from answers and encrypted.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from .db import Base


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware UTC datetime")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Role(enum.StrEnum):
    NURSE = "nurse"
    INVESTIGATOR = "investigator"
    DATA_MANAGER = "data_manager"
    ADMIN = "admin"


class PatientStatus(enum.StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    DECEASED = "deceased"
    NOT_OPERATED = "not_operated"
    COMPLETED = "completed"


#: Statuses under which a patient still gets questionnaires: active, and "not operated" when
#: the schedule gives it a follow-up track (without one, every time point was cancelled when the
#: status was recorded, so nothing opens). Withdrawn and deceased patients never get a message.
FOLLOWED_STATUSES = (PatientStatus.ACTIVE.value, PatientStatus.NOT_OPERATED.value)


class WithdrawalKind(enum.StrEnum):
    """What a withdrawing patient withdraws from."""

    QUESTIONNAIRES = "questionnaires"  # from the questionnaires only; stays in the study
    STUDY = "study"  # from the whole study


class AssessmentStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # window not open yet
    OPEN = "open"  # window open, not started
    IN_PROGRESS = "in_progress"  # at least one answer saved
    COMPLETED = "completed"
    # Window closed (or its anchor bound passed) with answers but no final submit: scored by the
    # half rule like a completed one, shown and exported as partial.
    PARTIAL = "partial"
    EXPIRED = "expired"  # window closed without completion ("missed")
    CANCELLED = "cancelled"


#: The stored status of a time point -> its reported state (the compliance report, the exports):
#: not_yet_due, open, complete, partial, missed (window closed, nothing received), not_expected
#: (cancelled: the patient had died, withdrawn or was not operated before its window).
REPORTED_STATE = {
    AssessmentStatus.SCHEDULED.value: "not_yet_due",
    AssessmentStatus.OPEN.value: "open",
    AssessmentStatus.IN_PROGRESS.value: "open",
    AssessmentStatus.COMPLETED.value: "complete",
    AssessmentStatus.PARTIAL.value: "partial",
    AssessmentStatus.EXPIRED.value: "missed",
    AssessmentStatus.CANCELLED.value: "not_expected",
}


class AnswerMode(enum.StrEnum):
    """How a time point's answers were collected."""

    ELECTRONIC = "electronic"  # the patient on their own link
    PAPER = "paper"  # a paper form, entered by a nurse
    TELEPHONE = "telephone"  # read out by a nurse on the telephone


class MessageStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its time (and the site's sending hours)
    SENDING = "sending"  # claimed by one scheduler process
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: The largest id an integer primary key holds (PostgreSQL ``integer``): anything larger that
#: arrives from a request names no row.
MAX_ID = 2**31 - 1


def _enum_values(enum_cls: type[enum.Enum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum_cls)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    time_zone: Mapped[str] = mapped_column(String(64))
    default_language: Mapped[str] = mapped_column(String(2))
    study_id_pattern: Mapped[str | None] = mapped_column(String(200))
    sending_start: Mapped[str] = mapped_column(String(5), default="09:00")
    sending_end: Mapped[str] = mapped_column(String(5), default="20:00")
    # The SMS sender this site's messages go out from (an alphanumeric sender ID or an E.164
    # number); None: the installation's Twilio number or messaging service.
    sms_sender: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    patients: Mapped[list[Patient]] = relationship(back_populates="site")

    __table_args__ = (
        CheckConstraint("default_language IN ('sv', 'fi', 'en')", name="default_language"),
    )


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(2), default="sv")
    all_sites: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The last TOTP time step accepted for this user: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    memberships: Mapped[list[SiteMembership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    __table_args__ = (CheckConstraint(f"role IN ({_enum_values(Role)})", name="role"),)

    @property
    def site_ids(self) -> set[int]:
        return {m.site_id for m in self.memberships}


class SiteMembership(Base):
    __tablename__ = "site_memberships"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )

    user: Mapped[StaffUser] = relationship(back_populates="memberships")
    site: Mapped[Site] = relationship()


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    language: Mapped[str] = mapped_column(String(2))
    # Fernet ciphertext of the E.164 number; never logged, never exported.
    phone_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Keyed hash of the E.164 number, so an inbound SMS can find its patient without decrypting.
    phone_lookup: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_invalid: Mapped[bool] = mapped_column(Boolean, default=False)
    inclusion_date: Mapped[date] = mapped_column(Date)
    surgery_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default=PatientStatus.ACTIVE.value)
    # The date the status took effect (the date of death, of the withdrawal, of the decision not
    # to operate); None while active. A withdrawal also records its kind (WithdrawalKind).
    status_date: Mapped[date | None] = mapped_column(Date)
    withdrawal_kind: Mapped[str | None] = mapped_column(String(20))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    site: Mapped[Site] = relationship(back_populates="patients")
    assessments: Mapped[list[Assessment]] = relationship(
        back_populates="patient", order_by="Assessment.due_date"
    )
    recorded_anchors: Mapped[list[PatientAnchorDate]] = relationship(
        back_populates="patient", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint(f"status IN ({_enum_values(PatientStatus)})", name="status"),
        CheckConstraint("language IN ('sv', 'fi', 'en')", name="language"),
    )


class PatientAnchorDate(Base):
    """The date of one of the schedule's own anchors for one patient (not the inclusion or
    surgery date, which are the patient's columns): the decision not to operate, or any event a
    schedule declares. Set and corrected by nurses, each change audited."""

    __tablename__ = "patient_anchor_dates"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    anchor: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str | None] = mapped_column(String(80))

    patient: Mapped[Patient] = relationship(back_populates="recorded_anchors")


class Assessment(Base):
    """One time point of one patient: its window, its status and its link."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    timepoint: Mapped[str] = mapped_column(String(40))
    anchor: Mapped[str] = mapped_column(String(20))
    due_date: Mapped[date] = mapped_column(Date)
    window_opens: Mapped[date] = mapped_column(Date)
    window_closes: Mapped[date] = mapped_column(Date)  # last day on which answers are accepted
    instruments: Mapped[list[str]] = mapped_column(JSON)  # e.g. ["qlq-c30:3.0", "qlq-pan26:1.0"]
    status: Mapped[str] = mapped_column(String(20), default=AssessmentStatus.SCHEDULED.value)
    # SHA-256 of the link token (hex). The token itself is never stored in the clear.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The token encrypted with PRO_ENCRYPTION_KEY while the window is open, so that reminders can
    # repeat the same link; wiped when the assessment completes, expires or is cancelled.
    token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    language: Mapped[str | None] = mapped_column(String(2))  # language of the submitted answers
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # SMS (messaging/outbox.py): when the invitation for the current link was queued (reset
    # whenever a new link is issued) and the local day of the next reminder (None: no more).
    invitation_queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_reminder_on: Mapped[date | None] = mapped_column(Date, index=True)
    # Missing data (answering/missing.py): why a missed time point has no answers, a code from
    # questionnaires/missing-reasons.yaml, with free text for "other"; who recorded it, when.
    missing_reason: Mapped[str | None] = mapped_column(String(40))
    missing_reason_text: Mapped[str | None] = mapped_column(Text)
    missing_reason_by: Mapped[str | None] = mapped_column(String(80))
    missing_reason_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How the answers were collected (electronic, paper, telephone) and who entered them (a staff
    # id for paper and telephone; None for the patient's own electronic answers).
    mode: Mapped[str | None] = mapped_column(String(20))
    entered_by: Mapped[str | None] = mapped_column(String(80))
    # For the nurse to review (patients/schedule_changes.py): "outside_window" when a moved
    # anchor date puts a completed or partial time point's answers outside its new window (a
    # "before surgery" form answered after the new surgery date). None: nothing to review.
    review_flag: Mapped[str | None] = mapped_column(String(40))

    patient: Mapped[Patient] = relationship(back_populates="assessments")
    responses: Mapped[list[Response]] = relationship(
        back_populates="assessment", order_by="Response.item_number"
    )
    scores: Mapped[list[Score]] = relationship(back_populates="assessment")

    __table_args__ = (
        UniqueConstraint("patient_id", "timepoint"),
        CheckConstraint(f"status IN ({_enum_values(AssessmentStatus)})", name="status"),
        CheckConstraint("window_opens <= due_date AND due_date <= window_closes", name="window"),
        Index("ix_assessments_status_window", "status", "window_opens", "window_closes"),
        Index("ix_assessments_status_closes", "status", "window_closes"),
        Index("ix_assessments_status_invitation", "status", "invitation_queued_at"),
    )


class Response(Base):
    """One stored answer: the response code exactly as on the paper form."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), index=True)
    instrument_id: Mapped[str] = mapped_column(String(40))
    instrument_version: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2))
    item_number: Mapped[int] = mapped_column(Integer)
    code: Mapped[int] = mapped_column(Integer)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())

    assessment: Mapped[Assessment] = relationship(back_populates="responses")

    __table_args__ = (UniqueConstraint("assessment_id", "item_number"),)


class Score(Base):
    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), index=True)
    instrument_id: Mapped[str] = mapped_column(String(40))
    instrument_version: Mapped[str] = mapped_column(String(20))
    scale: Mapped[str] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(Float(precision=53))
    items_in_scale: Mapped[int] = mapped_column(Integer)
    items_answered: Mapped[int] = mapped_column(Integer)
    algorithm_version: Mapped[str] = mapped_column(String(60))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The language of the answers the score was computed from (the first in language order if
    #: the patient switched language within the instrument); None when no item was answered.
    language: Mapped[str | None] = mapped_column(String(2))

    assessment: Mapped[Assessment] = relationship(back_populates="scores")

    __table_args__ = (UniqueConstraint("assessment_id", "scale"),)


class OutboxMessage(Base):
    """One SMS to one patient. Claimed atomically by a scheduler process before it is sent."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # invitation, reminder, resend, confirmation
    language: Mapped[str] = mapped_column(String(2))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default=MessageStatus.PENDING.value)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_status: Mapped[str | None] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error_code: Mapped[str | None] = mapped_column(String(20))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(f"status IN ({_enum_values(MessageStatus)})", name="status"),
        Index("ix_outbox_messages_status_scheduled_for", "status", "scheduled_for"),
    )


class AuditEvent(Base):
    """Append-only audit log. Never holds answers, phone numbers or link tokens.

    Updates and deletes are refused by the ORM (below) and by database triggers (migration).
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_type: Mapped[str] = mapped_column(String(20))  # staff, patient, system, operator
    actor_id: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(80))
    site_id: Mapped[int | None] = mapped_column(Integer, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


class AuditLogIsAppendOnly(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _context: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditLogIsAppendOnly("audit events cannot be changed or deleted")


# --- Patient questionnaire pages: rate limiting of link lookups ------------------------------


class RateLimitCounter(Base):
    """A fixed-window request counter, shared by every web worker through the database.

    ``bucket`` is a keyed hash of what is limited (e.g. a client address), never the address.
    """

    __tablename__ = "rate_limit_counters"

    bucket: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class InboundMessage(Base):
    """A patient's SMS reply, by the provider's message id only (never its number or text), so
    that a replayed webhook is recognised and changes and sends nothing."""

    __tablename__ = "inbound_messages"

    provider_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SchedulerHeartbeat(Base):
    """The last pass of each scheduler process (or ``jobs run``), so that an operator's
    ``pro-service check`` can tell whether any scheduler is running."""

    __tablename__ = "scheduler_heartbeats"

    worker: Mapped[str] = mapped_column(String(120), primary_key=True)  # host:pid:random
    last_job: Mapped[str] = mapped_column(String(40))
    last_pass_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # How long that pass (the heartbeat job) took, in seconds; None for rows from before.
    last_pass_seconds: Mapped[float | None] = mapped_column(Float)


# --- Staff pages: server-side sign-in sessions ----------------------------------------------


class StaffSession(Base):
    """One signed-in browser. The cookie holds a random token; only its SHA-256 is stored.

    Sign-out and password changes end sessions here, so a copied cookie stops working too.
    """

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set once the password (and, where needed, the second factor) has been checked.
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # When this browser last entered a two-factor code: the administration pages want one
    # from the last few minutes.
    second_factor_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[StaffUser] = relationship()


class PasswordLink(Base):
    """A one-time link to set a password, made by an admin for a new account or a forgotten
    password. Only the SHA-256 of its token is stored; it works once, until ``expires_at``."""

    __tablename__ = "password_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the link is used, or when a newer link for the same account replaces it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[StaffUser] = relationship(foreign_keys=[user_id])
