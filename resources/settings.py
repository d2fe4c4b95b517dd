"""Where foureyes keeps its state, read once from the environment where Definitions are built.

Assets never read the environment themselves: `FoureyesSettings.from_env()` is called by
``foureyes.definitions`` (and by the CLI, which must agree with it), and the values are
passed into resources as typed fields. A value that came from the process environment is
handed to resources as ``dg.EnvVar(name)`` (``configured``), never as its text: Dagster
stores resource configuration in its run snapshots, and a URL may carry a password.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from foureyes.resources.engine import check_store_url
from foureyes.resources.errors import ConfigurationError
from foureyes.resources.redaction import register_url

DEFAULT_HOME = ".foureyes"
DEFAULT_NAMESPACE = "foureyes"
STEP_EXECUTORS = ("default", "multiprocess", "in_process", "k8s")  # Dagster's default, or one of its executors
SECRET_BEARING = (  # settings whose values may carry credentials: passed to resources as EnvVar
    "FOUREYES_WAREHOUSE_URL",
    "FOUREYES_CONTROL_URL",
    "FOUREYES_MODELS",
)


@dataclass(frozen=True)
class FoureyesSettings:
    """The handful of settings that decide where data, decisions and lineage live.

    ``FOUREYES_MODELS`` lists model endpoints tried before the agents' local policies;
    ``FOUREYES_LINEAGE`` says where lineage goes (``both``, ``store``, ``external``);
    ``FOUREYES_EXECUTOR`` where the steps of a run execute (``foureyes.step_executor``).

    Examples:
        >>> import foureyes
        >>> s = foureyes.FoureyesSettings.from_env({"FOUREYES_HOME": "/tmp/fe"})
        >>> s.warehouse_url
        'sqlite:////tmp/fe/warehouse.db'
    """

    home: Path
    warehouse_url: str
    control_url: str
    namespace: str = DEFAULT_NAMESPACE
    models: tuple[tuple[str, str], ...] = ()
    lineage_mode: str = "both"
    timezone: str = "UTC"
    executor: str = "default"
    from_process_env: frozenset[str] = frozenset()  # the variables read from os.environ

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FoureyesSettings:
        env = os.environ if environ is None else environ
        home = Path(env.get("FOUREYES_HOME") or DEFAULT_HOME).expanduser().resolve()
        for name in SECRET_BEARING:
            register_url(env.get(name))
        for _, url in parse_models(env.get("FOUREYES_MODELS", "")):
            register_url(url)
        return cls(
            home=home,
            warehouse_url=_store_url(env, "FOUREYES_WAREHOUSE_URL", home, "warehouse.db"),
            control_url=_store_url(env, "FOUREYES_CONTROL_URL", home, "control.db"),
            namespace=env.get("FOUREYES_NAMESPACE") or DEFAULT_NAMESPACE,
            models=parse_models(env.get("FOUREYES_MODELS", "")),
            lineage_mode=_choice(env, "FOUREYES_LINEAGE", ("both", "store", "external"), "both"),
            timezone=_timezone(env.get("FOUREYES_TIMEZONE") or "UTC"),
            executor=_choice(env, "FOUREYES_EXECUTOR", STEP_EXECUTORS, "default"),
            from_process_env=frozenset(n for n in SECRET_BEARING if environ is None and env.get(n)),
        )

    def configured(self, name: str, value: str) -> str:
        """``value`` for a resource field: ``dg.EnvVar(name)`` when it came from the process environment."""
        import dagster as dg  # noqa: PLC0415 (settings are read by `foureyes --help`, which must stay fast)

        return dg.EnvVar(name) if name in self.from_process_env else value


def _store_url(env: Mapping[str, str], name: str, home: Path, default_file: str) -> str:
    """A configured store URL, checked; or the embedded default under the home, which is created for it."""
    given = env.get(name)
    if given:
        check_store_url(given, name)
        return given
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"FOUREYES_HOME={str(home)!r} cannot be created: {exc.strerror}") from None
    return sqlite_url(home / default_file)


def _timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"FOUREYES_TIMEZONE={name!r} is not an IANA time zone (e.g. Europe/London, America/New_York)"
        ) from None
    return name


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def parse_models(spec: str) -> tuple[tuple[str, str], ...]:
    """``name=url;name=url`` -> ((name, url), ...): OpenAI-compatible endpoints, in chain order.

    Examples:
        >>> parse_models("primary=http://a:8000; backup=http://b:8000")
        (('primary', 'http://a:8000'), ('backup', 'http://b:8000'))
    """
    models = []
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, sep, url = item.partition("=")
        if not (sep and name.strip() and url.strip()):
            raise ConfigurationError(
                f"FOUREYES_MODELS item {item!r} is not 'name=url' (e.g. 'primary=http://models:8000')"
            )
        models.append((name.strip(), url.strip()))
    return tuple(models)


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of an SQLite file (absolute path, so every process agrees on it)."""
    return f"sqlite:///{Path(path).resolve()}"
