"""`pip install .` as a user does it: one import name, nothing that shadows a project's own modules."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    subprocess.run(build, check=True, capture_output=True, cwd=out)
    (found,) = out.glob("foureyes-*.whl")
    return found


def test_the_wheel_holds_only_the_foureyes_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = archive.namelist()
    assert {t for t in tops if not t.endswith(".dist-info")} == {"foureyes"}
    assert "foureyes/resources/lineage/facet_schemas/AgentRunFacet.json" in names  # package data travels
    assert not any("/examples/finance_desk/" in n and n.endswith(".pyc") for n in names)


def test_installed_into_a_fresh_venv_foureyes_imports_and_resources_does_not(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the dependencies (dagster, pandas...) come from this environment; foureyes only from the wheel
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()
    (elsewhere / "resources.py").write_text("MINE = True\n")  # the user's own module keeps its name
    probe = (
        "import importlib.util, foureyes, resources; "
        "print(foureyes.__file__); print(resources.MINE); print(importlib.util.find_spec('checks')); "
        "print(foureyes.define_agent.__module__, foureyes.resources.SqlWarehouseResource.__module__)"
    )
    bare = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH, no virtualenv: only what was installed
    done = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, cwd=elsewhere, env=bare, check=False
    )
    assert done.returncode == 0, done.stderr
    location, mine, checks, modules = done.stdout.splitlines()
    assert location.startswith(site) and mine == "True" and checks == "None"
    assert modules == "foureyes.agent foureyes.resources.warehouse.store"
    cli = subprocess.run(
        [str(venv / "bin" / "foureyes"), "--help"], capture_output=True, text=True, cwd=elsewhere, check=False
    )
    assert cli.returncode == 0 and "trace" in cli.stdout, cli.stderr


def test_every_module_of_the_source_is_in_the_wheel(wheel):
    """A new subpackage must be listed in pyproject.toml, or the installed plugin cannot import it."""
    sources = {
        "foureyes": ROOT / "agent_assets",
        "foureyes/resources": ROOT / "resources",
        "foureyes/checks": ROOT / "checks",
    }
    expected = {
        f"{prefix}/{path.relative_to(folder).as_posix()}"
        for prefix, folder in sources.items()
        for path in folder.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert sorted(expected - shipped) == []
