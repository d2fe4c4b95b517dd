"""Shared fixtures: real SQLite files and a real PostgreSQL server started for the session.

The PostgreSQL server is Debian's, started by ``.ci/postgres`` (which installs it when
missing and run as root); every test that asks for it gets a fresh database of its own.
Set FOUREYES_TEST_PG_URL to use an existing server instead. Emitted OpenLineage events are
validated with the official schemas of the ``shared`` checkout beside this one
(FOUREYES_SHARED to point elsewhere).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from foureyes.resources.engine import dispose_all
from foureyes.resources.lineage.facets import SCHEMA_DIR
from foureyes.resources.settings import FoureyesSettings, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FOUREYES_SHARED", ROOT.parent / "shared"))
if not (SHARED / "tools" / "ol_validate.py").is_file():
    pytest.exit(
        f"the OpenLineage validator is not at {SHARED}/tools/ol_validate.py: check out `shared` beside this "
        "repository, or set FOUREYES_SHARED to its path",
        returncode=4,
    )
sys.path.insert(0, str(SHARED / "tools"))

from ol_validate import validate_event  # noqa: E402

DATABASES = ["sqlite", "postgres"]
FACET_SCHEMAS = SCHEMA_DIR


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Base URL of the session's PostgreSQL server (its 'postgres' database)."""
    given = os.environ.get("FOUREYES_TEST_PG_URL")
    if given:
        yield given
        return
    env = {**os.environ, "FOUREYES_PG_PORT": os.environ.get("FOUREYES_TEST_PG_PORT", "55432")}
    url = subprocess.run(
        [str(ROOT / ".ci" / "postgres"), "start", "--fast"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    yield url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = pg_server.rsplit("/", 1)[0] + f"/{name}"
    yield url
    dispose_all()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "test.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> FoureyesSettings:
    """Settings whose warehouse and control plane share the test's database."""
    return FoureyesSettings(home=tmp_path, warehouse_url=db_url, control_url=db_url)


def assert_valid_openlineage(events: list[dict]) -> None:
    """Every event validates against the official OpenLineage schemas (and ours)."""
    assert events, "expected OpenLineage events"
    extra = [str(FACET_SCHEMAS)] if FACET_SCHEMAS.is_dir() else []
    problems = {i: validate_event(e, extra) for i, e in enumerate(events)}
    bad = {i: p for i, p in problems.items() if p}
    assert not bad, f"invalid OpenLineage events: {bad}"
