"""Who may see and do what on the staff pages. Every staff view goes through these checks.

Roles (issue: research nurses):
- nurse: their own sites' patients; registers and edits them; sees their phone numbers;
- investigator: read-only, their own sites or all sites; never phone numbers;
- data manager: pseudonymised exports only (no patient pages);
- admin: users, sites and the audit trail; read-only patient pages; never phone numbers.

Objects of a site the user may not see answer "not found" (the caller turns
:class:`NotVisible` into 404), so nobody learns whether another site's patient exists.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..exports.access import EXPORT_ROLES
from ..models import MAX_ID, Assessment, Patient, Role, Site, StaffUser

PATIENT_VIEWER_ROLES = frozenset({Role.NURSE.value, Role.INVESTIGATOR.value, Role.ADMIN.value})
PATIENT_EDITOR_ROLES = frozenset({Role.NURSE.value})
ADMIN_ROLES = frozenset({Role.ADMIN.value})


__all__ = [
    "ADMIN_ROLES",
    "EXPORT_ROLES",
    "PATIENT_EDITOR_ROLES",
    "PATIENT_VIEWER_ROLES",
    "NotVisible",
]


T = TypeVar("T")


class NotVisible(LookupError):
    """The object does not exist or belongs to a site the user may not see."""


def visible_site_ids(user: StaffUser) -> frozenset[int] | None:
    """The site ids whose patients ``user`` may see; None means every site."""
    if user.role == Role.NURSE.value:
        return frozenset(user.site_ids)  # a nurse never has "all sites"
    if user.all_sites:
        return None
    return frozenset(user.site_ids)


def can_view_patients(user: StaffUser) -> bool:
    return user.role in PATIENT_VIEWER_ROLES


def can_edit_patients(user: StaffUser) -> bool:
    return user.role in PATIENT_EDITOR_ROLES


def can_see_phone(user: StaffUser, patient: Patient) -> bool:
    """Phone numbers are shown only to the nurses of the patient's own site."""
    return user.role == Role.NURSE.value and patient.site_id in user.site_ids


def visible_sites(session: Session, user: StaffUser) -> list[Site]:
    """The sites ``user`` may see patients of, ordered by code."""
    if not can_view_patients(user):
        return []
    ids = visible_site_ids(user)
    query = select(Site).order_by(Site.code)
    if ids is not None:
        query = query.where(Site.id.in_(ids))
    return list(session.scalars(query))


def _check_site(user: StaffUser, site_id: int) -> None:
    if not can_view_patients(user):
        raise NotVisible("this role has no patient pages")
    ids = visible_site_ids(user)
    if ids is not None and site_id not in ids:
        raise NotVisible("another site's object")


def _get(session: Session, model: type[T], ident: int) -> T | None:
    """The row with this id; an id no integer column can hold (from a tampered form) is none."""
    if not 1 <= ident <= MAX_ID:
        return None
    return session.get(model, ident)


def site_for(session: Session, user: StaffUser, site_id: int) -> Site:
    site = _get(session, Site, site_id)
    if site is None:
        raise NotVisible("no such site")
    _check_site(user, site.id)
    return site


def patient_for(session: Session, user: StaffUser, patient_id: int) -> Patient:
    patient = _get(session, Patient, patient_id)
    if patient is None:
        raise NotVisible("no such patient")
    _check_site(user, patient.site_id)
    return patient


def assessment_for(session: Session, user: StaffUser, assessment_id: int) -> Assessment:
    assessment = _get(session, Assessment, assessment_id)
    if assessment is None:
        raise NotVisible("no such assessment")
    _check_site(user, assessment.patient.site_id)
    return assessment
