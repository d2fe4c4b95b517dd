"""Where the steps of a code location's runs execute: ``FOUREYES_EXECUTOR``, read where Definitions are built.

The same definitions run on a laptop and on Kubernetes; only this setting changes. Unset
(``default``), Dagster's own default executor runs each step in its own process;
``in_process`` runs a whole run in one process; ``multiprocess`` always one process per step;
``k8s`` one Kubernetes pod per step (``dagster_k8s.k8s_job_executor``, from the optional
extra ``foureyes[k8s]``), each pod from the image, environment and secrets of the code
location's own pods. Steps share nothing in memory, under any of them: a circuit breaker,
an approval or an outbox entry written by one step is read by the next from the control
plane, so the executor is a deployment choice and never a change to an agent.
"""

from __future__ import annotations

import dagster as dg

from foureyes.resources.errors import ConfigurationError
from foureyes.resources.settings import STEP_EXECUTORS

_DAGSTER_EXECUTORS = {"multiprocess": dg.multiprocess_executor, "in_process": dg.in_process_executor}


def step_executor(kind: str) -> dg.ExecutorDefinition | None:
    """The executor for ``kind`` (a ``FOUREYES_EXECUTOR`` value), or None for Dagster's default.

    The same object for the same kind, so definitions built in several places of one project
    merge without conflict.

    Examples:
        >>> import dagster as dg
        >>> step_executor("multiprocess") is dg.multiprocess_executor
        True
        >>> defs = dg.Definitions(assets=[], executor=step_executor("in_process"))
        >>> step_executor("default") is None
        True
    """
    if kind == "default":
        return None
    if kind == "k8s":
        return _k8s_job_executor()
    if kind not in _DAGSTER_EXECUTORS:
        raise ConfigurationError(f"FOUREYES_EXECUTOR={kind!r} is not one of {', '.join(STEP_EXECUTORS)}")
    return _DAGSTER_EXECUTORS[kind]


def _k8s_job_executor() -> dg.ExecutorDefinition:
    try:
        from dagster_k8s import k8s_job_executor  # noqa: PLC0415 (an optional extra, and a heavy import)
    except ImportError:
        raise ConfigurationError(
            "FOUREYES_EXECUTOR=k8s runs each step in its own Kubernetes pod with dagster-k8s, "
            "which is not installed: pip install 'foureyes[k8s]'"
        ) from None
    return k8s_job_executor
