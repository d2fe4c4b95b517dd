"""Every command, every bad input: one line on stderr, a non-zero exit, no traceback, no side effect.

The matrix is every command against every bad setting, plus each command's own bad
options, run through the ``foureyes`` entry point as a user types them (in process, so the
matrix stays cheap); a few of them again as real processes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from foureyes.cli.main import main
from tests.helpers import cli
from tests.servers import free_port

COMMANDS = {
    "demo": ["demo", "--days", "1"],
    "status": ["status"],
    "decisions": ["decisions", "--agent", "var_risk", "--partition", "2026-11-20"],
    "trace": ["trace", "positions", "--partition", "2026-11-20"],
    "approvals list": ["approvals", "list"],
    "approvals approve": ["approvals", "approve", "abcdef12", "--reason", "ok"],
    "outbox list": ["outbox", "list"],
    "outbox retry": ["outbox", "retry", "--all"],
    "principals add": ["principals", "add", "alice", "--scope", "read"],
    "principals list": ["principals", "list"],
    "audit": ["audit", "--verify"],
    "lineage serve": ["lineage", "serve", "--port", "0"],
    "lineage ingest": ["lineage", "ingest", "{events}"],
}
BAD_SETTINGS = {
    "unreachable control plane": {"FOUREYES_CONTROL_URL": f"postgresql://u:pw@127.0.0.1:{free_port()}/db"},
    "driver not installed": {"FOUREYES_CONTROL_URL": "mysql://u:pw@db.internal/foureyes"},
    "directory that does not exist": {"FOUREYES_CONTROL_URL": "sqlite:////nonexistent/dir/x.db"},
    "not a URL": {"FOUREYES_WAREHOUSE_URL": "just some words"},
    "models": {"FOUREYES_MODELS": "garbage"},
    "lineage mode": {"FOUREYES_LINEAGE": "sometimes"},
    "time zone": {"FOUREYES_TIMEZONE": "Mars/Olympus_Mons"},
    "home under a file": {"FOUREYES_HOME": "/dev/null/foureyes"},
}
BAD_OPTIONS = {
    "days zero": ["demo", "--days", "0"],
    "days negative": ["demo", "--days", "-3"],
    "days not a number": ["demo", "--days", "many"],
    "end not a date": ["demo", "--end", "2026-13-45"],
    "end in words": ["demo", "--end", "yesterday"],
    "unknown fault": ["demo", "--days", "1", "--fault", "vendor_prices:2026-11-18=gremlins"],
    "fault on the wrong asset": ["demo", "--days", "1", "--fault", "holdings:2026-11-18=missing"],
    "unknown format": ["status", "--format", "xml"],
    "negative depth": ["trace", "positions", "--partition", "2026-11-20", "--depth", "-1"],
    "trace without an asset": ["trace"],
    "trace of a key that is no table": ["trace", "bad key!!", "--partition", "2026-11-20"],
    "trace of nothing built": ["trace", "positions", "--partition", "2031-01-01"],
    "downstream without an asset": ["trace", "--downstream"],
    "decisions without an agent": ["decisions", "--partition", "2026-11-20"],
    "decisions of an unknown verdict": ["decisions", "--agent", "var_risk", "-p", "2026-11-20", "--verdict", "maybe"],
    "decisions never made": ["decisions", "--agent", "var_risk", "-p", "2031-01-01"],
    "approve without an id": ["approvals", "approve", "--reason", "r"],
    "approve a short id": ["approvals", "approve", "ab", "--reason", "r"],
    "approve as an account nobody configured": ["approvals", "approve", "abcdef12", "--reason", "r"],
    "approve by a name typed": ["approvals", "approve", "abcdef12", "--by", "alice", "--reason", "r"],
    "approve without a reason": ["approvals", "approve", "abcdef12"],
    "approve a digest too short": ["approvals", "approve", "abcdef12", "--reason", "r", "--digest", "ab"],
    "principal without a scope": ["principals", "add", "alice"],
    "principal of an unknown scope": ["principals", "add", "alice", "--scope", "admin"],
    "principal named system": ["principals", "add", "System", "--scope", "read"],
    "agent principal that approves": ["principals", "add", "agent:var_risk", "--scope", "approve"],
    "token of nobody": ["principals", "token", "nobody"],
    "token for zero days": ["principals", "token", "nobody", "--expires-in-days", "0"],
    "revoke an unknown token": ["principals", "revoke", "0123456789ab"],
    "grant to nobody": ["principals", "grant", "nobody", "--scope", "read"],
    "disable nobody": ["principals", "disable", "nobody"],
    "audit of no entries": ["audit", "--limit", "0"],
    "approvals of an unknown status": ["approvals", "list", "--status", "lost"],
    "retry nothing": ["outbox", "retry"],
    "retry an unknown key": ["outbox", "retry", "zzzzzzzz"],
    "port out of range": ["lineage", "serve", "--port", "99999"],
    "port negative": ["lineage", "serve", "--port", "-1"],
    "no room for a body": ["lineage", "serve", "--max-body-mb", "0"],
    "ingest a missing file": ["lineage", "ingest", "/nonexistent/events.json"],
    "ingest a binary file": ["lineage", "ingest", "{binary}"],
    "ingest invalid events": ["lineage", "ingest", "{invalid}"],
    "unknown command": ["frobnicate"],
}


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    (tmp_path / "events.jsonl").write_text("")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 4)
    bad = {"eventTime": "yesterday", "producer": "x", "run": {"runId": "not-a-uuid"}, "job": {}}
    (tmp_path / "invalid.jsonl").write_text(json.dumps(bad) + "\n{not json\n")
    return {
        "events": str(tmp_path / "events.jsonl"),
        "binary": str(tmp_path / "binary.bin"),
        "invalid": str(tmp_path / "invalid.jsonl"),
    }


def _invoke(args: list[str], env: dict[str, str], files: dict[str, str]):
    argv = [a.format(**files) if a.startswith("{") else a for a in args]
    clean = {k: None for k in os.environ if k.startswith(("FOUREYES_", "DAGSTER_HOME", "OPENLINEAGE"))}
    return CliRunner().invoke(main, argv, env={**clean, **env}, catch_exceptions=False)


def _assert_one_clear_line(result, allowed_before: str | None = None) -> None:
    lines = result.stderr.strip().splitlines()
    if allowed_before is not None:  # per-line problem reports come first, then the one error line
        lines = [line for line in lines if not line.startswith(allowed_before)]
    assert result.exit_code not in (0, None), (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


MATRIX = [(c, s) for c in COMMANDS for s in BAD_SETTINGS] + [(o, None) for o in BAD_OPTIONS]


@pytest.mark.parametrize(("case", "setting"), MATRIX, ids=[f"{c}|{s}" if s else c for c, s in MATRIX])
def test_every_command_refuses_every_bad_input_in_one_line(case, setting, tmp_path, files):
    env = {"FOUREYES_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    if setting is None:
        args = BAD_OPTIONS[case]
    else:
        args, env = COMMANDS[case], env | BAD_SETTINGS[setting]
    result = _invoke(args, env, files)
    invalid_file = case == "ingest invalid events"
    _assert_one_clear_line(result, allowed_before=files["invalid"] if invalid_file else None)
    assert not Path("/nonexistent").exists()  # nothing is created behind the user's back
    for secret in ("pw@", ":pw"):
        assert secret not in result.stderr + result.stdout  # a URL in an error is shown without its password


@pytest.mark.parametrize(
    "args",
    [["demo", "--end", "2026-13-45"], ["status"], ["lineage", "serve", "--port", "99999"]],
    ids=["usage error", "bad setting", "out of range"],
)
def test_a_real_process_prints_one_line_too(args, tmp_path):
    unreachable = f"postgresql://u:pw@127.0.0.1:{free_port()}/db"
    done = cli(*args, home=tmp_path, timeout=120, FOUREYES_CONTROL_URL=unreachable)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("Error: "), done.stderr
