"""Finding a code location the way the dagster CLI does: ``-w workspace.yaml``, ``-m MODULE``, ``-f FILE``.

The commands read a project's agents and stores from its definitions, not from foureyes'
settings: the agents are the assets tagged ``foureyes/agent`` in its asset graph (whether
they ever ran or not), the control plane, warehouse and targets are its resources, built
the way Dagster builds them. Loading goes through Dagster's own code pointers, so a module
that ``dagster dev -m`` loads, this loads, with the same rules for finding its definitions.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.errors import ConfigurationError
from foureyes.resources.fallback.check_record import DagsterRecords
from foureyes.resources.resource_keys import CONTROL_PLANE, WAREHOUSE
from foureyes.resources.warehouse.store import SqlWarehouseResource
from foureyes.stages import agents_in

DEFAULT_WORKSPACE = "workspace.yaml"


@dataclass(frozen=True)
class Pointer:
    """Where a code location's definitions are: a module or a file, an attribute, a working directory."""

    location: str
    module: str | None = None
    file: str | None = None
    attribute: str | None = None
    working_directory: str | None = None

    def describe(self) -> str:
        where = f"module {self.module}" if self.module else f"file {self.file}"
        return where + (f", attribute {self.attribute}" if self.attribute else "")


@dataclass
class CodeLocation:
    """A loaded code location: its agents, its resources, and Dagster's record of it."""

    name: str
    repository: dg.RepositoryDefinition

    @property
    def agents(self) -> dict[str, dg.AssetKey]:
        """Every agent of the code location (name -> its actions asset), including agents that never ran."""
        return agents_in(self.repository.asset_graph)

    def resource_definitions(self) -> Mapping[str, dg.ResourceDefinition]:
        return self.repository.get_top_level_resources()

    @contextmanager
    def resources(self, *keys: str) -> Iterator[object]:
        """The named resources, initialised as a run would initialise them (EnvVars resolved)."""
        defined = self.resource_definitions()
        missing = [k for k in keys if k not in defined]
        if missing:
            raise ConfigurationError(
                f"code location {self.name!r} has no resource {', '.join(missing)}: are its agents "
                "put in it with foureyes.definitions(agents=[...])?"
            )
        with dg.build_resources({k: defined[k] for k in keys}) as built:
            yield built

    @contextmanager
    def control_plane(self) -> Iterator[ControlPlaneResource]:
        with self.resources(CONTROL_PLANE) as built:
            yield getattr(built, CONTROL_PLANE)

    @contextmanager
    def warehouse(self) -> Iterator[SqlWarehouseResource]:
        with self.resources(WAREHOUSE) as built:
            yield getattr(built, WAREHOUSE)

    def records(self) -> DagsterRecords | None:
        """Dagster's record of this code location (None without ``DAGSTER_HOME``: no instance to read)."""
        if not os.environ.get("DAGSTER_HOME"):
            return None
        return DagsterRecords(dg.DagsterInstance.get(), self.repository.asset_graph, self.name)

    def require_agent(self, agent: str) -> None:
        if agent not in self.agents:
            known = ", ".join(self.agents) or "none"
            raise ConfigurationError(f"no agent {agent!r} in code location {self.name!r} (its agents: {known})")


def pointer_from_options(
    workspace: str | None, module: str | None, file: str | None, attribute: str | None, location: str | None
) -> Pointer:
    """The code location the options name, as the dagster CLI reads them (default ./workspace.yaml)."""
    if module and file:
        raise ConfigurationError("give -m MODULE or -f FILE, not both")
    if module or file:
        if workspace:
            raise ConfigurationError("give -w WORKSPACE, or -m/-f, not both")
        name = location or (module or Path(file).stem)
        return Pointer(name, module=module, file=file, attribute=attribute, working_directory=os.getcwd())
    path = Path(workspace or DEFAULT_WORKSPACE)
    if not path.is_file():
        hint = "" if workspace else " (none here: give -w WORKSPACE, or -m MODULE like the dagster CLI)"
        raise ConfigurationError(f"workspace file {str(path)!r} not found{hint}")
    pointers = workspace_pointers(path)
    if location is None:
        if len(pointers) > 1:
            names = ", ".join(p.location for p in pointers)
            raise ConfigurationError(f"{path} has {len(pointers)} code locations ({names}): choose one with -l NAME")
        return pointers[0]
    chosen = [p for p in pointers if p.location == location]
    if not chosen:
        names = ", ".join(p.location for p in pointers)
        raise ConfigurationError(f"no code location {location!r} in {path} (it has: {names})")
    return chosen[0]


def workspace_pointers(path: Path) -> list[Pointer]:
    """The python_module / python_file / python_package entries of a workspace.yaml."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from None
    entries = document.get("load_from") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"{path} has no load_from entries")
    base = path.resolve().parent
    pointers = []
    for entry in entries:
        (kind, spec), *_ = entry.items() if isinstance(entry, dict) and entry else [(None, None)]
        if kind not in ("python_module", "python_package", "python_file"):
            raise ConfigurationError(f"{path}: cannot load {entry!r} (python_module, python_package, python_file)")
        spec = {"module_name" if kind != "python_file" else "relative_path": spec} if isinstance(spec, str) else spec
        directory = str(base / spec["working_directory"]) if spec.get("working_directory") else str(base)
        if kind == "python_file":
            file = str(base / spec["relative_path"])
            name = spec.get("location_name") or Path(file).stem
            pointers.append(Pointer(name, file=file, attribute=spec.get("attribute"), working_directory=directory))
        else:
            module = spec.get("module_name") or spec.get("package_name")
            name = spec.get("location_name") or module
            pointers.append(Pointer(name, module=module, attribute=spec.get("attribute"), working_directory=directory))
    return pointers


def load(pointer: Pointer) -> CodeLocation:
    """Load the definitions a pointer names, with Dagster's loader; one line if they do not load."""
    # Dagster's own loading, as `dagster dev -m/-f` does it (private modules, pinned dagster version).
    from dagster._core.code_pointer import CodePointer
    from dagster._core.definitions.reconstruct import initialize_repository_def_from_pointer
    from dagster._core.workspace.autodiscovery import (
        loadable_targets_from_python_file,
        loadable_targets_from_python_module,
    )

    if pointer.module in sys.modules:  # a second load in one process (tests): read the environment again
        importlib.reload(sys.modules[pointer.module])
    try:
        attribute = pointer.attribute
        if attribute is None:
            targets = (
                loadable_targets_from_python_module(pointer.module, pointer.working_directory)
                if pointer.module
                else loadable_targets_from_python_file(pointer.file, pointer.working_directory)
            )
            attribute = targets[0].attribute
        code = (
            CodePointer.from_module(pointer.module, attribute, pointer.working_directory)
            if pointer.module
            else CodePointer.from_python_file(pointer.file, attribute, pointer.working_directory)
        )
        repository = initialize_repository_def_from_pointer(code)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"cannot load code location {pointer.location!r} ({pointer.describe()}): {type(exc).__name__}: {exc}"
        ) from None
    return CodeLocation(pointer.location, repository)
