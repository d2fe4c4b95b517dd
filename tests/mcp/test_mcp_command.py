"""`foureyes mcp` as a command: the extra it needs, a port in use, a bad token, where it may listen."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from foureyes.mcp_server.server import is_loopback
from tests.conftest import ROOT
from tests.helpers import environment_without


def _mcp(tmp_path, *args: str, probe: str = "", **env: str) -> subprocess.CompletedProcess:
    code = f"{probe}\nfrom foureyes.cli.main import main\nmain({['mcp', *args]!r})"
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environment_without(("FOUREYES_", "DAGSTER_HOME")) | {"FOUREYES_HOME": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_without_the_extra_the_message_names_it(tmp_path):
    done = _mcp(tmp_path, probe="import sys; sys.modules['mcp'] = None")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: foureyes mcp needs the 'mcp' extra (mcp.server.mcpserver is not installed): pip install 'foureyes[mcp]'"
    )


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _mcp(tmp_path, "--transport", "http", "--port", str(taken.getsockname()[1]))
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: [Errno 98]") and "in use" in line


def test_over_stdio_a_token_that_is_not_valid_stops_the_server_before_it_serves(tmp_path):
    done = _mcp(tmp_path, FOUREYES_TOKEN="fey_not-a-token")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == "Error: $FOUREYES_TOKEN is not a valid token"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("10.0.0.5", False), ("example.org", False), ("::", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_over_stdio_a_client_that_hangs_up_mid_session_ends_it_quietly(tmp_path):
    code = "from foureyes.cli.main import main\nmain(['mcp'])"
    server = subprocess.Popen(
        [sys.executable, "-c", code],
        env=environment_without(("FOUREYES_", "DAGSTER_HOME")) | {"FOUREYES_HOME": str(tmp_path)},
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    server.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
    server.stdin.flush()
    assert json.loads(server.stdout.readline())["id"] == 1  # it serves
    server.stdout.close()  # the client stops reading, then asks for more than fits a pipe
    asks = [{"jsonrpc": "2.0", "id": n, "method": "tools/list"} for n in range(2, 40)]
    server.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in asks))
    server.stdin.close()
    assert server.wait(timeout=120) == 0
    assert server.stderr.read().decode() == ""
