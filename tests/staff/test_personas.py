"""The persona access matrix: every staff URL, walked by every persona, for both sites' objects.

Two nurses at SE-UPP, one at FI-HEL, an investigator for every site and one for SE-UPP only, a
data manager and an admin. A persona who may not see an object (or whose role has no such page)
gets 404, never 403, so nobody learns whether another site's patient exists; nothing is saved from
a refused POST. The test fails when a staff URL is added without a line in the matrix below.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import url_for
from sqlalchemy import func, select

from pro_service.models import (
    Assessment,
    AuditEvent,
    OutboxMessage,
    PasswordLink,
    Patient,
    Site,
    StaffUser,
)

from builders import PERSONAS
from pages import csrf_of, read

NURSES = {"SE-UPP": {"nurse_upp", "nurse_upp2"}, "FI-HEL": {"nurse_hel"}}
INVESTIGATORS = {"SE-UPP": {"investigator", "investigator_upp"}, "FI-HEL": {"investigator"}}
EVERYONE = set(PERSONAS)


def nurses(site: str) -> set[str]:
    return NURSES[site]


def viewers(site: str) -> set[str]:
    return NURSES[site] | INVESTIGATORS[site] | {"admin"}


def anyone(site: str) -> set[str]:
    return EVERYONE


#: endpoint -> who may use it, given the site of the objects in the URL.
MATRIX: dict[str, Callable[[str], set[str]]] = {
    "staff.index": anyone,
    "staff.account": anyone,
    "staff.change_password": anyone,
    "staff.two_factor": anyone,
    "staff.disable_two_factor": anyone,
    "staff.board": viewers,
    "staff.patient": viewers,
    "staff.assessment": viewers,
    "staff.patient_chart": viewers,
    "staff.register_patient": nurses,
    "staff.edit_patient": nurses,
    "staff.change_surgery_date": nurses,
    "staff.change_anchor_date": nurses,
    "staff.change_status": nurses,
    "staff.correct_status": nurses,
    "staff.resend_link": nurses,
    "staff.opt_in": nurses,
    "staff.show_phone": nurses,
    "staff.show_link": nurses,
    "staff.record_missing_reason": nurses,
    "staff.enter_answers": nurses,
    "staff.save_entered_answers": nurses,
    "staff.audit_trail": lambda site: {"admin"},
    "staff.audit_trail_export": lambda site: {"admin"},
    "staff.exports": lambda site: {"data_manager", "admin"},
    "staff.compliance": anyone,
    "staff.compliance_csv": anyone,
    **{
        endpoint: (lambda site: {"admin"})
        for endpoint in (
            "staff.admin_confirm",
            "staff.admin_index",
            "staff.admin_users",
            "staff.admin_new_user",
            "staff.admin_user",
            "staff.admin_deactivate",
            "staff.admin_reactivate",
            "staff.admin_reset_two_factor",
            "staff.admin_password_link",
            "staff.admin_sites",
            "staff.admin_new_site",
            "staff.admin_site",
        )
    },
}
#: Pages that show one site at a time, chosen with ?site=<id>.
SITE_PAGES = {"staff.board", "staff.register_patient"}
#: The sign-in steps work without a verified session; test_sign_in.py walks them.
SIGN_IN = {"staff.login", "staff.login_code", "staff.logout", "staff.set_password"}


def _staff_rules(app):  # type: ignore[no-untyped-def]
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint.startswith("staff.")),
        key=lambda r: r.endpoint,
    )


def test_every_staff_url_is_in_the_matrix(app):
    endpoints = {rule.endpoint for rule in _staff_rules(app)}
    assert endpoints - SIGN_IN == set(MATRIX), "add the new staff URL to the persona matrix"


def _objects(app, staff_study, site: str) -> dict[str, object]:
    study_id = "UPP-001" if site == "SE-UPP" else "HEL-001"
    patient_id = staff_study.patients[study_id]
    assessment_id = read(
        app,
        lambda s: s.scalar(
            select(Assessment.id).where(Assessment.patient_id == patient_id).limit(1)
        ),
    )
    return {
        "patient_id": patient_id,
        "assessment_id": assessment_id,
        "scale": "QL2",
        "anchor": "no_surgery_decision",
        "site": staff_study.sites[site],
        "site_id": staff_study.sites[site],
        # an account of that site (the administration pages)
        "user_id": staff_study.users["nurse_upp" if site == "SE-UPP" else "nurse_hel"],
    }


def _urls(app, objects: dict[str, object]) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every staff URL with this site's objects."""
    urls = []
    with app.test_request_context():
        for rule in _staff_rules(app):
            if rule.endpoint in SIGN_IN:
                continue
            values = {name: objects[name] for name in rule.arguments}
            if rule.endpoint in SITE_PAGES:
                values["site"] = objects["site"]  # pages that pick a site read ?site=<id>
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                urls.append((rule.endpoint, method, url_for(rule.endpoint, **values)))
    return urls


def _state(app) -> tuple[object, ...]:
    """What a refused request must leave as it was."""

    def snapshot(s):  # type: ignore[no-untyped-def]
        patients = s.execute(
            select(
                Patient.id,
                Patient.study_id,
                Patient.language,
                Patient.status,
                Patient.surgery_date,
                Patient.inclusion_date,
                Patient.opted_out,
                Patient.phone_encrypted,
            ).order_by(Patient.id)
        ).all()
        return (
            tuple(patients),
            s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action.not_like("staff.%"))
            ),
            s.scalar(select(func.count()).select_from(OutboxMessage)),
            tuple(s.execute(select(Assessment.id, Assessment.status, Assessment.due_date)).all()),
            tuple(
                s.execute(
                    select(
                        StaffUser.id,
                        StaffUser.role,
                        StaffUser.is_active,
                        StaffUser.all_sites,
                        StaffUser.display_name,
                        StaffUser.totp_secret_encrypted,
                    ).order_by(StaffUser.id)
                ).all()
            ),
            tuple(s.execute(select(Site.__table__).order_by(Site.id)).all()),
            s.scalar(select(func.count()).select_from(PasswordLink)),
        )

    return read(app, snapshot)


@pytest.mark.parametrize("site", ["SE-UPP", "FI-HEL"])
@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_persona_walks_every_staff_url(app, staff_study, sign_in, persona, site):
    client = sign_in(persona)
    token = csrf_of(client.get("/staff/account").text)
    objects = _objects(app, staff_study, site)
    outcomes: dict[tuple[str, str], int] = {}
    for endpoint, method, url in _urls(app, objects):
        allowed = persona in MATRIX[endpoint](site)
        if method == "GET":
            response = client.get(url)
            if allowed:
                assert response.status_code in (200, 302), (endpoint, url, response.status_code)
                if response.status_code == 302:
                    assert "/staff/login" not in response.headers["Location"], (endpoint, url)
            else:
                assert response.status_code == 404, (persona, endpoint, url, response.status_code)
        else:
            before = _state(app)
            form = {"csrf_token": token, "reason": "persona walk", "site": objects["site"]}
            response = client.post(url, data=form)
            if allowed:
                assert response.status_code < 500, (endpoint, url, response.status_code)
            else:
                assert response.status_code == 404, (persona, endpoint, url, response.status_code)
                assert _state(app) == before, f"{persona} changed data through {endpoint}"
        outcomes[(endpoint, method)] = response.status_code
    assert len(outcomes) >= len(MATRIX)  # every endpoint was requested at least once
