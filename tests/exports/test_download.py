"""Who may export which sites. The download itself is tested on the real page, through the
staff sign-in: tests/staff/test_export_download.py."""

from __future__ import annotations

import pytest

from pro_service.audit import Actor
from pro_service.exports.access import ExportForbidden, export_scope
from pro_service.models import StaffUser
from pro_service.staff.accounts import create_user


@pytest.fixture
def staff(session, study, now):
    def make(email, role, sites=(), all_sites=False):
        return create_user(
            session,
            now=now,
            actor=Actor.operator(),
            email=email,
            password="correct horse battery",
            role=role,
            sites=[study.sites[s] for s in sites],
            all_sites=all_sites,
        )

    users = {
        "admin": make("admin@example.org", "admin", all_sites=True),
        "dm_upp": make("dm.upp@example.org", "data_manager", sites=["SE-UPP"]),
        "nurse_upp": make("nurse@example.org", "nurse", sites=["SE-UPP"]),
        "investigator": make("pi@example.org", "investigator", all_sites=True),
    }
    session.commit()
    return {name: user.id for name, user in users.items()}


def test_export_scope_names_the_sites_of_a_site_bound_user(session, staff, study):
    assert export_scope(session.get(StaffUser, staff["admin"])) is None
    assert export_scope(session.get(StaffUser, staff["dm_upp"])) == {study.site_id("SE-UPP")}
    for role in ("nurse_upp", "investigator"):
        with pytest.raises(ExportForbidden):
            export_scope(session.get(StaffUser, staff[role]))


def test_a_deactivated_data_manager_may_not_export(session, staff):
    user = session.get(StaffUser, staff["dm_upp"])
    user.is_active = False
    with pytest.raises(ExportForbidden):
        export_scope(user)
