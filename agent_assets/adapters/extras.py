"""Optional integrations: imported only when used, and named in one line when not installed."""

from __future__ import annotations

import importlib
from types import ModuleType

from foureyes.resources.errors import FoureyesError


class MissingExtraError(FoureyesError, ImportError):
    """An optional integration was used without the extra that installs it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``module``, or a one-line error naming the extra to install for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the {extra!r} extra ({module} is not installed): pip install 'foureyes[{extra}]'"
        ) from exc
