"""Exports as downloads for data managers and admins: roles, sites, streaming, audit."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from flask import abort, request
from sqlalchemy import select

from pro_service.audit import Actor
from pro_service.exports import ExportFilterError, ExportFilters
from pro_service.exports.access import ExportForbidden, export_scope
from pro_service.exports.web import export_response
from pro_service.extensions import db
from pro_service.models import AuditEvent, StaffUser
from pro_service.services.staff import create_user


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
        "dm_all": make("dm@example.org", "data_manager", all_sites=True),
        "dm_upp": make("dm.upp@example.org", "data_manager", sites=["SE-UPP"]),
        "nurse_upp": make("nurse@example.org", "nurse", sites=["SE-UPP"]),
        "investigator": make("pi@example.org", "investigator", all_sites=True),
    }
    session.commit()
    return {name: user.id for name, user in users.items()}


@pytest.fixture
def download(app, staff, now):
    """A stand-in for the staff page the lead wires after the staff merge: same calls."""

    @app.get("/test-export/<int:user_id>/<fmt>")
    def _download(user_id: int, fmt: str):
        user = db.session.get(StaffUser, user_id)
        try:
            scope = export_scope(user)
        except ExportForbidden:
            abort(404)
        filters = ExportFilters(sites=tuple(request.args.getlist("site")))
        try:
            response = export_response(
                db.session,
                fmt=fmt,
                filters=filters,
                actor=Actor.staff(user.id),
                now=now,
                allowed_site_ids=scope,
            )
        except ExportFilterError as exc:
            return exc.message, 400
        db.session.commit()
        return response

    client = app.test_client()

    def get(user: str, fmt: str, **query):
        return client.get(f"/test-export/{staff[user]}/{fmt}", query_string=query)

    return get


def _unzip(response) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    return {name: archive.read(name) for name in archive.namelist()}


def test_a_data_manager_downloads_a_streamed_zip_with_data_and_dictionary(download, session):
    response = download("dm_all", "wide")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="pro-export-wide-2026-03-16.zip"'
    )
    files = _unzip(response)
    assert sorted(files) == [
        "pro-export-wide-2026-03-16.csv",
        "pro-export-wide-2026-03-16.csv.dictionary.csv",
    ]
    rows = list(csv.DictReader(io.StringIO(files["pro-export-wide-2026-03-16.csv"].decode())))
    assert {r["site"] for r in rows} == {"SE-UPP", "FI-HEL"}
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "export.downloaded")
    ).one()
    assert (event.actor_type, event.after["format"]) == ("staff", "wide")


def test_a_site_bound_data_manager_gets_only_her_sites_rows(download):
    files = _unzip(download("dm_upp", "long"))
    rows = list(csv.DictReader(io.StringIO(files["pro-export-long-2026-03-16.csv"].decode())))
    assert rows and {r["site"] for r in rows} == {"SE-UPP"}
    refused = download("dm_upp", "long", site="FI-HEL")
    assert refused.status_code == 400
    assert refused.text == "no site with code 'FI-HEL' (known: SE-UPP)"


def test_nurses_and_investigators_cannot_export(download, session):
    assert download("nurse_upp", "long").status_code == 404
    assert download("investigator", "wide").status_code == 404
    assert (
        session.scalars(select(AuditEvent).where(AuditEvent.action == "export.downloaded")).all()
        == []
    )


@pytest.mark.parametrize("fmt", ["sav", "fhir"])
def test_an_admin_downloads_spss_and_fhir(download, fmt):
    files = _unzip(download("admin", fmt))
    suffix = ".sav" if fmt == "sav" else ".ndjson"
    data = files[f"pro-export-{fmt}-2026-03-16{suffix}"]
    assert len(data) > 1000
    assert b"+46701740610" not in data


def test_export_scope_names_the_sites_of_a_site_bound_user(session, staff, study):
    assert export_scope(session.get(StaffUser, staff["admin"])) is None
    assert export_scope(session.get(StaffUser, staff["dm_upp"])) == {study.site_id("SE-UPP")}
    with pytest.raises(ExportForbidden):
        export_scope(session.get(StaffUser, staff["nurse_upp"]))
