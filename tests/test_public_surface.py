"""The public surface: one import name, its ``__all__``, running docstring examples, and the layering.

The layering is read from the source (every import statement of every module), so a private
import or a library module reaching into the shipped desk fails here, whoever adds it.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from openlineage.client.transport import get_default_factory

from tests.conftest import ROOT

PUBLIC_PACKAGES = ("foureyes", "foureyes.resources", "foureyes.checks", "foureyes.observe", "foureyes.standin_model")
SOURCE = {
    "foureyes": ROOT / "agent_assets",
    "foureyes.resources": ROOT / "resources",
    "foureyes.checks": ROOT / "checks",
}
EXAMPLES = "foureyes.examples"


def _modules() -> list[str]:
    found = []
    for package in ("foureyes", "foureyes.resources", "foureyes.checks"):
        module = importlib.import_module(package)
        found.append(package)
        found += [m.name for m in pkgutil.walk_packages(module.__path__, prefix=f"{package}.")]
    return sorted(set(found))


def _source_of(module: str) -> Path:
    for package in ("foureyes.resources", "foureyes.checks", "foureyes"):
        if module == package or module.startswith(f"{package}."):
            rest = module.removeprefix(package).lstrip(".").split(".") if module != package else []
            path = SOURCE[package].joinpath(*rest)
            return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    raise AssertionError(module)


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, absolute, including imports inside functions."""
    tree = ast.parse(_source_of(module).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


MODULES = _modules()


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_public_name_resolves_and_the_listing_is_the_surface(package):
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__), "a name listed twice"
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def test_nothing_but_foureyes_is_importable_from_elsewhere(tmp_path):
    probe = (
        "import importlib.util as u, foureyes; print([u.find_spec(n) for n in ('agent_assets', 'resources', 'checks')])"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH: only what is installed
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "[None, None, None]", done.stderr


def test_importing_foureyes_loads_neither_dagster_nor_the_desk():
    probe = (
        "import sys, foureyes; print(sorted(m for m in sys.modules if m.startswith(('dagster', 'foureyes.examples'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/", check=True)
    assert done.stdout.strip() == "[]"


def test_the_openlineage_transport_is_registered_as_type_foureyes(tmp_path):
    transport = get_default_factory().create({"type": "foureyes", "url": f"sqlite:///{tmp_path / 'control.db'}"})
    assert type(transport).__module__ == "foureyes.resources.lineage.transport"


@pytest.mark.parametrize("module", [m for m in MODULES if not m.startswith(EXAMPLES)])
def test_the_library_never_imports_the_shipped_desk(module):
    assert not {i for i in _imports(module) if i.startswith(EXAMPLES)}, module


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith(f"{EXAMPLES}.")])
def test_the_desk_is_written_only_against_the_public_api(module):
    private = {
        i
        for i in _imports(module)
        if i.startswith("foureyes")
        and not i.startswith(EXAMPLES)
        and i not in PUBLIC_PACKAGES
        and not any(i == f"{p}.{name}" for p in PUBLIC_PACKAGES for name in importlib.import_module(p).__all__)
    }
    assert not private, f"{module} imports private {sorted(private)}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("foureyes.resources")])
def test_resources_depend_on_no_stage_above_them(module):
    above = {
        i
        for i in _imports(module)
        if i.startswith("foureyes.") and not i.startswith(("foureyes.resources", "foureyes.calendar"))
    }
    assert not above, f"{module} imports {sorted(above)}"


def _examples(module: str) -> list[doctest.DocTest]:
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(importlib.import_module(module)) if t.examples]


DOCTESTS = [(m, t) for m in MODULES for t in _examples(m)]


@pytest.mark.parametrize(("module", "example"), DOCTESTS, ids=[t.name for _, t in DOCTESTS])
def test_every_docstring_example_runs(module, example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("FOUREYES_HOME", str(tmp_path / "home"))
    runner = doctest.DocTestRunner(verbose=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(example, out=lambda text: pytest.fail(f"{module}: {text}", pytrace=False))
    assert runner.summarize(verbose=False).failed == 0


def test_the_public_api_has_examples_to_run():
    documented = {t.name.split(".")[-1] for _, t in DOCTESTS}
    assert {"define_agent", "definitions", "AgentComponent", "versioned_output"} <= documented, documented
