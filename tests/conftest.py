"""Fixtures: flaskr-style ``app``/``client``/``runner`` over a real database.

Every database test runs on SQLite and on PostgreSQL. PostgreSQL is skipped when it cannot be
reached, unless PRO_TEST_REQUIRE_POSTGRES=1 (as in CI), which turns that into a failure.
Isolation: SQLite tests each get a fresh copy of a migrated template file; PostgreSQL tests share
one migrated database per test process and every table is truncated after each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from pro_service import create_app, migrate
from pro_service.db import make_engine

from builders import make_patient, make_site, sign_in, staff_study  # noqa: F401  (fixtures)

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "PRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("PRO_TEST_REQUIRE_POSTGRES") == "1"

# Everything a test needs is passed explicitly; a developer's own PRO_* settings must not leak in.
for _name in [n for n in os.environ if n.startswith("PRO_") and not n.startswith("PRO_TEST_")]:
    del os.environ[_name]


def _postgres_available() -> str | None:
    """Return why PostgreSQL is unusable, or None."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001  (any failure means "not reachable")
        return f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL).render_as_string()} unreachable: {exc}"
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    problem = _postgres_available()
    if problem:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PRO_TEST_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    name = f"pro_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_database")
        try:
            yield url
        finally:
            _truncate_postgres(url)


@pytest.fixture
def app_overrides(database_url: str, tmp_path: Path) -> dict[str, object]:
    """Override to change settings for one test module (``return {**app_overrides, ...}``)."""
    return {
        "env": "test",
        "database_url": database_url,
        "instance_dir": tmp_path / "instance",
        "public_base_url": "https://pro.example.test",
        # Jobs run in the test process (``jobs run`` through the CLI runner) must not lower
        # its CPU priority for the rest of the run.
        "scheduler_niceness": 0,
        "TESTING": True,
    }


@pytest.fixture
def app(app_overrides: dict[str, object]):  # type: ignore[no-untyped-def]
    application = create_app(app_overrides)
    yield application
    application.extensions["pro_db"]["engine"].dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def session(app):  # type: ignore[no-untyped-def]
    """The app's database session, inside an app context."""
    from pro_service.extensions import db

    with app.app_context():
        yield db.session
        db.session.rollback()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
