"""`.ci/postgres start` is called by every test worker: each call must return, whoever started the server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _holders(path: Path) -> list[int]:
    """Processes that hold ``path`` open (read from /proc, so no lsof is needed)."""
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(path) for fd in fd_dir.iterdir()):
                found.append(int(fd_dir.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def test_a_started_server_holds_no_lock_and_a_second_start_returns(pg_server):
    if os.environ.get("FOUREYES_TEST_PG_URL"):
        pytest.skip("an existing server was given; .ci/postgres did not start it")
    port = os.environ.get("FOUREYES_TEST_PG_PORT", "55432")
    lock = Path(os.environ.get("TMPDIR", "/tmp")) / f"foureyes-pg-{port}.lock"
    assert _holders(lock) == []  # a postmaster that kept the lock would block every later start
    env = {**os.environ, "FOUREYES_PG_PORT": port}
    for _ in range(2):  # as the second xdist worker, and a third
        start = [str(ROOT / ".ci" / "postgres"), "start", "--fast"]
        done = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == pg_server
