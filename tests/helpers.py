"""What many tests need the same way: a Dagster instance kept in a home, the CLI run as a user runs it, principals."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import dagster as dg

from foureyes.resources.control_plane.principal_book import APPROVE, READ, Principal
from foureyes.resources.control_plane.resource import ControlPlaneResource
from tests.conftest import ROOT

APPROVER = (READ, APPROVE)


def environment_without(prefixes: str | tuple[str, ...]) -> dict[str, str]:
    """The process environment less the variables a test sets itself (those starting with ``prefixes``)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def home_instance(home: Path) -> dg.DagsterInstance:
    """A persistent Dagster instance in ``home/dagster``: Dagster's record travels with the home."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(dagster_home))


def cli(*args: str, home: Path, timeout: float = 600, **settings: str) -> subprocess.CompletedProcess:
    """``foureyes ARGS`` on the embedded default under ``home`` (its instance in ``home/dagster``)."""
    env = environment_without(("FOUREYES_", "DAGSTER_HOME", "OPENLINEAGE"))
    env |= {"FOUREYES_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **settings}
    return subprocess.run(
        [sys.executable, "-m", "foureyes.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sensor_tick(defs: dg.Definitions, instance: dg.DagsterInstance, sensor: str, cursor: str | None = None):
    """One evaluation of a foureyes sensor, as the daemon would run it (its control plane bound)."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"foureyes_control_plane": defs.resources["foureyes_control_plane"]},
    )
    return defs.resolve_sensor_def(sensor).evaluate_tick(context)


def principal_of(
    control: ControlPlaneResource, name: str, scopes: Iterable[str] = APPROVER, *, os_user: str | None = None
) -> Principal:
    """Configure a principal and authenticate it as a caller would: by its operating-system account, else a token."""
    book = control.principals
    book.add(name, scopes, os_user=os_user, created_by="tests")
    if os_user is not None:
        return book.of_os_user(os_user)
    found = book.authenticate(book.issue_token(name).token)
    assert found is not None
    return found


def cli_principal(run: Callable[..., subprocess.CompletedProcess], name: str, *scopes: str) -> str:
    """``foureyes principals add NAME --scope ...`` through ``run`` (the test's CLI); the token it printed last."""
    done = run("principals", "add", name, *(f"--scope={s}" for s in scopes or APPROVER))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]
