"""No secret leaves its configuration: planted in every configurable place, found in no table, file or output.

Distinct secrets go into the warehouse and control-plane URLs (PostgreSQL), the model
endpoint, both tool-server URLs, the OpenLineage URL and its API key. The model server and
the order system are hostile: they answer 500 and echo back the credentials they were
sent; the collateral system is down; the lineage receiver takes the events (and so sees the
credentials, as a real one would). Then the demo and every
reading command run, a failing delivery is retried, and everything is searched: each table
of both databases, every file under the homes (SQLite blobs decompressed, as Dagster
compresses its snapshots), and everything the commands printed — for each secret as
written, URL-encoded and inside a basic-auth header.
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys
import urllib.parse
import uuid
import zlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.helpers import environment_without
from tests.servers import ECHO, LineageReceiver, ModelServer, ToolServer, free_port

pytestmark = pytest.mark.postgres

SECRETS = {
    "warehouse": "wh-Pa55-31f0c9",
    "control": "cp-Pa55-77aa02",
    "model": "sk-model-5c1d8e",
    "orders": "oms-Pa55-9b2e41",
    "collateral": "col-Pa55-0d3f66",
    "lineage_url": "ol-Pa55-e4a1b7",
    "lineage_key": "ol-key-2f8c90",
}


def _forms(user: str, secret: str) -> set[str]:
    """How a secret could appear: as written, URL-encoded, or inside a basic-auth header."""
    return {secret, urllib.parse.quote(secret), base64.b64encode(f"{user}:{secret}".encode()).decode()}


@pytest.fixture
def two_databases(pg_server):
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    names = [f"t_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    base = make_base(pg_server)
    yield [f"{base}/{n}" for n in names]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def make_base(pg_server: str) -> str:
    parsed = sa.engine.make_url(pg_server)
    return f"postgresql+psycopg://{parsed.host}:{parsed.port}"


def _with_password(url: str, user: str, secret: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{secret}@{rest}"


def test_no_planted_secret_reaches_a_store_a_file_or_an_output(tmp_path, two_databases):
    warehouse_db, control_db = two_databases
    model = ModelServer(lambda prompt: {}).start()
    model.mode = ECHO
    orders = ToolServer().start()
    orders.mode = ECHO
    lineage = LineageReceiver().start()
    env = environment_without(("FOUREYES_", "DAGSTER_", "OPENLINEAGE"))
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env |= {
        "FOUREYES_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "FOUREYES_WAREHOUSE_URL": _with_password(warehouse_db, "postgres", SECRETS["warehouse"]),
        "FOUREYES_CONTROL_URL": _with_password(control_db, "postgres", SECRETS["control"]),
        "FOUREYES_MODELS": f"primary={_with_password(model.url, 'key', SECRETS['model'])}",
        "FOUREYES_ORDER_SYSTEM_URL": _with_password(orders.url, "oms", SECRETS["orders"]),
        "FOUREYES_COLLATERAL_SYSTEM_URL": f"http://col:{SECRETS['collateral']}@127.0.0.1:{free_port()}",
        "OPENLINEAGE_URL": _with_password(lineage.url, "ol", SECRETS["lineage_url"]),
        "OPENLINEAGE_API_KEY": SECRETS["lineage_key"],
    }
    users = {"warehouse": "postgres", "control": "postgres", "model": "key", "orders": "oms", "collateral": "col"}
    forbidden = {f for name, secret in SECRETS.items() for f in _forms(users.get(name, "ol"), secret)}

    def cli(*args: str, **settings: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "foureyes.cli.main", *args],
            env=env | settings,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        return done.stdout + done.stderr

    try:
        outputs = [cli("demo", "--days", "2", "--end", "2026-11-18")]
        assert model.requests and orders.requests, "the hostile servers were asked and answered"
        assert lineage.events, "the configured lineage transport was used"
        added = cli("principals", "add", "ops", "--scope", "read", "--scope", "operate")
        operator = {"FOUREYES_TOKEN": next(w for w in added.split() if w.startswith("fey_"))}
        for args in (
            ["status"],
            ["decisions", "--agent", "rebalancing", "--partition", "2026-11-17"],
            ["decisions", "--agent", "margin_calls", "--partition", "2026-11-17", "--format", "json"],
            ["outbox", "list", "--status", "all"],
            ["outbox", "list", "--status", "all", "--format", "json"],
            ["outbox", "retry", "--all"],
            ["approvals", "list", "--status", "all"],
            ["trace", "var_risk_proposals", "--partition", "2026-11-17"],
            ["trace", "var_risk_proposals", "--partition", "2026-11-17", "--format", "json"],
        ):
            outputs.append(cli(*args, **(operator if args[:2] == ["outbox", "retry"] else {})))
    finally:
        for server in (model, orders, lineage):
            server.stop()
    assert "queued_for_retry" in outputs[6] or "in_doubt" in outputs[6] or "queued" in outputs[6], outputs[6]
    leaks = [
        (where, secret)
        for where, text in [
            *((f"output of command {i}", t) for i, t in enumerate(outputs)),
            *_database_texts(env["FOUREYES_WAREHOUSE_URL"]),
            *_database_texts(env["FOUREYES_CONTROL_URL"]),
            *_file_texts(home),
            *_file_texts(dagster_home),
        ]
        for secret in forbidden
        if secret in text
    ]
    assert not leaks, leaks[:10]


def _database_texts(url: str):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            rows = conn.exec_driver_sql(f'SELECT * FROM "{table}"').all()
            yield f"table {table} of {url.rsplit('/', 1)[-1]}", "\n".join(map(repr, rows))
    engine.dispose()


def _file_texts(root: Path):
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        yield str(path), raw.decode("utf-8", "replace")
        if raw.startswith(b"SQLite format 3"):
            yield from _sqlite_texts(path)


def _sqlite_texts(path: Path):
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        yield f"{path}:{table}", _inflated(value).decode("utf-8", "replace")
                    elif isinstance(value, str):
                        yield f"{path}:{table}", value


def _inflated(blob: bytes) -> bytes:
    """Dagster stores snapshots zlib-compressed: a plain search of the file would miss them."""
    try:
        return zlib.decompress(blob)
    except zlib.error:
        return blob
