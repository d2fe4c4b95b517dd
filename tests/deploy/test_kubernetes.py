"""deploy/kubernetes: Helm values the Dagster chart accepts, Secrets Kubernetes accepts, and the two agreeing.

The values are validated as Helm validates them, against the chart's own values.schema.json
(vendored in ``dagster_chart/``, see its README), their Kubernetes types against Kubernetes'
JSON schemas; the Secrets against Kubernetes' JSON schemas too (``kubernetes_manifests``).
Then the values are held to what foureyes and the rest of deploy/ say: the location they
name loads and runs its steps with the k8s job executor, every setting that may carry a
credential comes from a Secret, the run queue and run monitoring are those of
``deploy/dagster-postgres.yaml``, and the pod runs as the image's user on the image's port.
"""

from __future__ import annotations

import copy
import importlib

import dagster as dg
import pytest
import yaml
from dagster_k8s import k8s_job_executor

from foureyes.examples.finance_desk.definitions import DAILY_JOB, MARKET_DATA_JOB
from foureyes.resources.settings import SECRET_BEARING, FoureyesSettings
from tests.conftest import ROOT
from tests.deploy import chart_values, kubernetes_manifests
from tests.deploy.dockerfile import stages

DEPLOY = ROOT / "deploy"
VALUES = yaml.safe_load((DEPLOY / "kubernetes" / "values.yaml").read_text())
SECRETS = {
    doc["metadata"]["name"]: doc
    for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "foureyes-secret.yaml").read_text())
}
(DEPLOYMENT,) = VALUES["dagster-user-deployments"]["deployments"]
(IMAGE,) = stages(DEPLOY / "Dockerfile")


def _env(deployment: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in deployment["env"]}


def test_the_values_are_valid_for_the_dagster_chart():
    assert chart_values.problems(VALUES) == []


def test_the_chart_schema_check_refuses_what_helm_would_refuse():
    broken = copy.deepcopy(VALUES)
    deployment = broken["dagster-user-deployments"]["deployments"][0]
    del deployment["port"]
    deployment["securityContext"]["allowPrivilegeEscalaton"] = False  # misspelt
    broken["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] = "four"
    broken["runLauncher"]["type"] = "K8sLauncher"
    found = "\n".join(chart_values.problems(broken))
    assert "dagster-user-deployments.deployments.0: 'port' is a required property" in found
    assert "'allowPrivilegeEscalaton' was unexpected" in found
    assert "dagsterDaemon.runCoordinator.config.queuedRunCoordinator: {'maxConcurrentRuns': 'four'}" in found
    assert "runLauncher.type: 'K8sLauncher' is not one of" in found


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_the_secrets_are_valid_kubernetes_secrets(name):
    assert kubernetes_manifests.problems(SECRETS[name]) == []


def test_the_manifest_check_refuses_what_kubernetes_would_refuse():
    broken = copy.deepcopy(SECRETS["foureyes-stores"])
    broken["stringdata"] = broken.pop("stringData")
    assert kubernetes_manifests.problems(broken) == [
        f"{version} (root): Additional properties are not allowed ('stringdata' was unexpected)"
        for version in (kubernetes_manifests.OLDEST, kubernetes_manifests.NEWEST)
    ]


def test_every_setting_that_may_carry_a_credential_comes_from_a_secret_never_the_values():
    assert not set(_env(DEPLOYMENT)) & set(SECRET_BEARING)
    assert "postgresqlPassword" not in VALUES["postgresql"] and VALUES["generatePostgresqlPasswordSecret"] is False
    stores = SECRETS[DEPLOYMENT["envSecrets"][0]["name"]]["stringData"]
    assert {"FOUREYES_WAREHOUSE_URL", "FOUREYES_CONTROL_URL"} <= set(stores)
    assert "postgresql-password" in SECRETS[VALUES["global"]["postgresqlSecretName"]]["stringData"]
    placeholders = [v for doc in SECRETS.values() for v in doc["stringData"].values()]
    assert all("<" in value for value in placeholders)  # the file in the repository holds no credential


def test_the_location_named_in_the_values_runs_each_step_in_its_own_pod(tmp_path):
    """The deployment's env, with stores where its Secret would give them: every job on k8s_job_executor."""
    flag, module = DEPLOYMENT["codeServerArgs"]
    assert flag == "-m"
    env = _env(DEPLOYMENT) | {"FOUREYES_HOME": str(tmp_path)}
    settings = FoureyesSettings.from_env(env)
    defs = importlib.import_module(module).build_definitions(settings)
    assert isinstance(defs, dg.Definitions)
    for job in (DAILY_JOB, MARKET_DATA_JOB):
        assert defs.resolve_job_def(job).executor_def is k8s_job_executor
    assert settings.timezone == _env(DEPLOYMENT)["FOUREYES_TIMEZONE"]


def test_the_run_queue_and_run_monitoring_are_those_of_the_postgresql_instance():
    instance = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())
    daemon = VALUES["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == instance["run_queue"]["max_concurrent_runs"]
    monitoring = instance["run_monitoring"]
    assert daemon["runMonitoring"] == {
        "enabled": monitoring["enabled"],
        "startTimeoutSeconds": monitoring["start_timeout_seconds"],
        "cancelTimeoutSeconds": monitoring["cancel_timeout_seconds"],
        "pollIntervalSeconds": monitoring["poll_interval_seconds"],
        "maxResumeRunAttempts": monitoring["max_resume_run_attempts"],
    }
    assert VALUES["telemetry"]["enabled"] is instance["telemetry"]["enabled"]


def test_the_pod_runs_the_image_as_its_user_on_its_port():
    uid = int(IMAGE.args()["UID"])
    pod = DEPLOYMENT["podSecurityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == pod["runAsGroup"] == uid
    assert DEPLOYMENT["port"] == int(IMAGE.env()["CODE_SERVER_PORT"])
    assert DEPLOYMENT["includeConfigInLaunchedRuns"]["enabled"] is True  # run and step pods get its env and secrets
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
