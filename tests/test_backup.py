"""The backup procedure in README.md, proven: pg_dump a populated database, pg_restore it into a
fresh one, and every export of the restored database is byte for byte the original's."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from conftest import POSTGRES_ADMIN_URL
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from pro_service import create_app
from pro_service.extensions import db
from pro_service.models import AuditEvent, Patient

pytestmark = pytest.mark.postgres


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _exports(app, folder) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    files = {}
    for fmt in ("wide", "long", "sav", "fhir"):
        out = folder / f"export.{fmt}"
        result = runner.invoke(args=["export", "--format", fmt, "-o", str(out)])
        assert result.exit_code == 0, result.output
        # The SPSS header carries the time it was written: its data are compared instead.
        files[fmt] = _sav_data(out) if fmt == "sav" else out.read_bytes()
        files[f"{fmt} dictionary"] = (folder / f"export.{fmt}.dictionary.csv").read_bytes()
    return files


def _sav_data(path) -> bytes:  # type: ignore[no-untyped-def]
    import pyreadstat

    frame, meta = pyreadstat.read_sav(str(path))
    return repr((frame.to_dict("list"), meta.column_labels, meta.variable_value_labels)).encode()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_restored_dump_gives_identical_exports(app, runner, database_url, tmp_path):
    for tool in ("pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (apt-get install postgresql-client)")
    assert runner.invoke(args=["demo"]).exit_code == 0
    (tmp_path / "before").mkdir()
    original = _exports(app, tmp_path / "before")

    dump = tmp_path / "pro.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--file={dump}", _libpq(database_url)],
        check=True,
        timeout=300,
    )
    name = f"pro_restored_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    restored_url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={_libpq(restored_url)}", str(dump)],
            check=True,
            timeout=300,
        )
        # The same settings and encryption key (kept apart from the dump), the restored database.
        settings = app.config["PRO_SETTINGS"]
        restored = create_app(
            {
                "env": "test",
                "database_url": restored_url,
                "instance_dir": tmp_path / "restored-instance",
                "public_base_url": settings.public_base_url,
                "TESTING": True,
            }
        )
        try:
            (tmp_path / "after").mkdir()
            assert _exports(restored, tmp_path / "after") == original
            with restored.app_context():
                # Phone numbers open with the kept key; the audit trail came along.
                vault = restored.extensions["vault"]
                phones = [
                    vault.decrypt(p.phone_encrypted)
                    for p in db.session.scalars(select(Patient))
                    if p.phone_encrypted is not None
                ]
                assert phones and all(number.startswith("+") for number in phones)
                assert db.session.scalar(select(func.count()).select_from(AuditEvent)) > 0
        finally:
            restored.extensions["pro_db"]["engine"].dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
