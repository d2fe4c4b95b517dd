"""The durable local PostgreSQL the benchmarks share (``.ci/postgres`` on port 55433)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PG_PORT = "55433"


def start_postgres() -> str:
    """Start (or find) the durable local server of ``.ci/postgres`` and return its URL."""
    print(f"starting PostgreSQL on port {PG_PORT} (.ci/postgres start)...", flush=True)
    done = subprocess.run(
        [str(ROOT / ".ci" / "postgres"), "start"],
        env={**os.environ, "FOUREYES_PG_PORT": PG_PORT},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server; return its URL."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
