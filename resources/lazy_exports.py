"""Public names that load on first use, so importing a foureyes package stays quick (PEP 562)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], names: Mapping[str, str], extras: Mapping[str, str] | None = None
) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for a package whose public ``names`` live in the modules given.

    ``extras`` maps a name to the module its optional extra installs. ``dir()`` leaves such a
    name out while that module is missing, because tools that walk a package (``dg``'s
    component discovery reads every name ``dir()`` gives) would otherwise fail on an integration
    the user never asked for; asked for by name, it still fails with the extra to install.
    """
    extras = extras or {}

    def load(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def listing() -> list[str]:
        return sorted({*namespace, *(n for n in names if installed(extras.get(n)))})

    return load, listing


def installed(module: str | None) -> bool:
    """Whether ``module`` (None: nothing optional) can be imported, found without importing it."""
    return module is None or importlib.util.find_spec(module) is not None
