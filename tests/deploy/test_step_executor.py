"""FOUREYES_EXECUTOR picks the executor where Definitions are built: one pod per step with ``k8s``."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pytest
from dagster_k8s import k8s_job_executor

import foureyes
from foureyes.examples.finance_desk.definitions import DAILY_JOB, MARKET_DATA_JOB, build_definitions
from foureyes.resources.errors import ConfigurationError
from tests.conftest import ROOT


def _settings(tmp_path, executor: str | None = None) -> foureyes.FoureyesSettings:
    env = {"FOUREYES_HOME": str(tmp_path)} | ({"FOUREYES_EXECUTOR": executor} if executor else {})
    return foureyes.FoureyesSettings.from_env(env)


def test_the_shipped_location_runs_every_job_on_the_k8s_job_executor_when_told(tmp_path):
    defs = build_definitions(_settings(tmp_path, "k8s"))
    assert defs.executor is k8s_job_executor
    for job in (DAILY_JOB, MARKET_DATA_JOB):
        assert defs.resolve_job_def(job).executor_def is k8s_job_executor
    assert defs.resolve_implicit_global_asset_job_def().executor_def is k8s_job_executor


def test_unset_leaves_dagster_its_default_executor(tmp_path):
    defs = build_definitions(_settings(tmp_path))
    assert defs.executor is None
    assert defs.resolve_job_def(DAILY_JOB).executor_def is dg.multi_or_in_process_executor


@pytest.mark.parametrize(("kind", "executor"), [("multiprocess", "multiprocess"), ("in_process", "in_process")])
def test_dagster_executors_by_name(tmp_path, kind, executor):
    job = build_definitions(_settings(tmp_path, kind)).resolve_job_def(DAILY_JOB)
    assert job.executor_def.name == executor


class _Alerts(pa.DataFrameModel):
    desk: str
    action: str
    rationale: str
    confidence: float


def _watcher(name: str) -> foureyes.Agent:
    return foureyes.define_agent(
        name,
        inputs=["trades"],
        propose=lambda ctx: pd.DataFrame(
            {"desk": ["rates"], "action": ["notify"], "rationale": ["late"], "confidence": [0.9]}
        ),
        proposals_schema=_Alerts,
        natural_key=["desk"],
        actions=["notify"],
        partitions_def=dg.DailyPartitionsDefinition("2026-01-01"),
    )


def test_definitions_built_twice_merge_with_one_executor(tmp_path):
    """A project that calls foureyes.definitions in several places (Components) gets one executor, not a conflict."""
    settings = _settings(tmp_path, "k8s")
    first = foureyes.definitions(agents=[_watcher("one")], settings=settings)
    second = foureyes.definitions(agents=[_watcher("two")], settings=settings)
    merged = dg.Definitions.merge(dg.Definitions(assets=[dg.AssetSpec("trades")]), first, second)
    assert merged.executor is k8s_job_executor


def test_an_unknown_executor_is_refused_naming_the_valid_ones(tmp_path):
    with pytest.raises(ConfigurationError, match=r"FOUREYES_EXECUTOR='celery' is not one of default, multiprocess, "):
        _settings(tmp_path, "celery")


def test_without_the_extra_k8s_says_which_extra_to_install(tmp_path):
    """dagster-k8s is an optional extra: hidden here as if not installed, the location says what is missing."""
    probe = (
        "import sys; sys.modules['dagster_k8s'] = None\n"
        "from foureyes.step_executor import step_executor\n"
        "step_executor('default'); step_executor('multiprocess')\n"  # the others need nothing more
        "step_executor('k8s')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "foureyes.resources.errors.ConfigurationError: FOUREYES_EXECUTOR=k8s runs each step in its own Kubernetes "
        "pod with dagster-k8s, which is not installed: pip install 'foureyes[k8s]'"
    )
