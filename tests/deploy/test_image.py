"""The user-code image of deploy/Dockerfile, its steps run here as a builder would run them.

No image is built in the suite: base images come from a registry this machine cannot reach,
and a build installs from PyPI (``deploy/build_image.sh`` builds one where a builder is at
hand). What the suite runs instead is the Dockerfile's own commands, read from it: its RUN on
a copy of a project that is not foureyes' (``tests/integration/projects/riskproj``, a ``dg``
project, with foureyes' wheel in its ``wheels/`` folder and foureyes' constraints beside it),
installing into a fresh virtual environment; then the image's CMD, which must serve the
location until the chart's readiness probe (``dagster api grpc-health-check``) passes. Two
things differ from a build, both through pip's own environment variables, not the command:
the index is off (PIP_NO_INDEX) and so is build isolation; and the dependencies foureyes pins
are already there (the suite's own, reached through a .pth file, their console scripts written
as pip writes them), so that only the project and foureyes are installed.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster._grpc.client import DagsterGrpcClient
from dagster_shared.error import SerializableErrorInfo
from dagster_shared.serdes import deserialize_value

from tests.conftest import ROOT
from tests.deploy.dockerfile import Stage, stages
from tests.servers import free_port

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROJECT = ROOT / "tests" / "integration" / "projects" / "riskproj"
LOCATION = "riskproj.definitions"
IMAGE_CONSTRAINTS = "foureyes-constraints.txt"  # the default of the CONSTRAINTS argument
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "_URL", "CREDENTIAL")


@pytest.fixture(scope="module")
def image() -> Stage:
    (stage,) = stages(DOCKERFILE)
    return stage


def _sh(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=base | env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def installed(image, tmp_path_factory) -> Path:
    """The image's virtual environment, made by the Dockerfile's RUN command; its path."""
    tmp = tmp_path_factory.mktemp("image")
    app = tmp / "app"  # COPY . ${APP}: the project's root, as `docker build .` gets it
    shutil.copytree(PROJECT, app)
    shutil.copy(ROOT / "constraints.txt", app / image.args()["CONSTRAINTS"])
    foureyes = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*foureyes, "-w", str(app / "wheels")], check=True, capture_output=True, cwd=tmp)

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for bundled in ("setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth", "setuptools-*"):
        for path in Path(site).glob(bundled):  # the venv's own setuptools, older than the one pinned here
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    Path(site, "pinned-dependencies.pth").write_text(f"{_dependencies_only(tmp / 'dependencies')}\n")
    offline = {"PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0"}
    env = image.args() | {"APP": str(app), "VIRTUAL_ENV": str(venv), **offline}
    done = _sh(image.run('pip" install'), tmp, env)
    assert done.returncode == 0, done.stderr
    assert "does not provide the extra" not in done.stdout + done.stderr
    _console_scripts(venv, "dagster")
    return venv


def _dependencies_only(folder: Path) -> Path:
    """This environment's packages less foureyes itself (an editable install here): links, in ``folder``."""
    folder.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.startswith(("foureyes", "__editable__")):
            (folder / entry.name).symlink_to(entry)
    return folder


def _console_scripts(venv: Path, distribution: str) -> None:
    """The commands pip would have put in ``venv/bin`` for ``distribution``, had it installed it there."""
    for entry in importlib.metadata.distribution(distribution).entry_points.select(group="console_scripts"):
        script = venv / "bin" / entry.name
        call = f"from {entry.module} import {entry.attr}\nsys.exit({entry.attr}())"
        script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\n{call}\n")
        script.chmod(0o755)


@pytest.fixture
def code_server(image, installed, tmp_path) -> Iterator[tuple[subprocess.Popen, int]]:
    """The image's CMD, in the image's environment, with the location's settings as the chart gives them."""
    port = free_port()
    workdir = tmp_path / "home"
    workdir.mkdir()
    image_env = {k: v for k, v in image.env().items() if "$" not in v}
    env = image_env | {
        "PATH": f"{installed / 'bin'}:/usr/bin:/bin",
        "HOME": str(workdir),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "FOUREYES_HOME": str(workdir / ".foureyes"),
        "LOCATION_MODULE": LOCATION,
        "CODE_SERVER_HOST": "127.0.0.1",  # loopback here; 0.0.0.0 in a pod
        "CODE_SERVER_PORT": str(port),
        "FOUREYES_EXECUTOR": "k8s",  # as deploy/kubernetes/values.yaml sets it
        "RISKPROJ_DUCKDB": str(tmp_path / "riskproj.duckdb"),
        "RISKPROJ_TICKETS_URL": "http://127.0.0.1:9",
    }
    (tmp_path / "dagster_home").mkdir()
    server = subprocess.Popen(
        image.command(), cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    yield server, port
    server.terminate()
    server.wait(timeout=30)


def test_the_image_runs_as_a_numeric_non_root_user(image):
    user, _, group = image.last("USER").partition(":")
    uid = image.args()["UID"]
    assert user == group == "${UID}" and uid.isdigit() and int(uid) > 0  # Kubernetes' runAsNonRoot can verify it


def test_no_secret_is_an_argument_or_in_the_environment_of_the_image(image):
    names = [*image.args(), *image.env()]
    assert not [n for n in names if any(word in n.upper() for word in SECRET_WORDS)], names


def test_the_image_installs_foureyes_with_the_k8s_extra_by_default(image):
    assert image.args()["FOUREYES_REQUIREMENT"] == "foureyes[k8s]"
    assert image.args()["CONSTRAINTS"] == IMAGE_CONSTRAINTS


def test_the_dockerfiles_steps_install_a_project_that_serves_its_location(installed, code_server):
    server, port = code_server
    probe = [str(installed / "bin" / "dagster"), "api", "grpc-health-check", "-p", str(port)]  # the chart's probe
    deadline = time.monotonic() + 240
    while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        assert server.poll() is None, server.stdout.read()
        assert time.monotonic() < deadline, "the code server never became ready"
        time.sleep(1)
    located = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import foureyes, riskproj; print(foureyes.__file__, riskproj.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=installed,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout.split()
    foureyes, project = located
    assert foureyes.startswith(str(installed)), foureyes  # from its wheel
    assert project.startswith(str(installed.parent / "app" / "src")), project  # from the source tree in the image
    served = deserialize_value(DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories())
    assert not isinstance(served, SerializableErrorInfo), served.to_string()
    assert served.executable_path.startswith(str(installed)), served.executable_path
    (pointer,) = served.repository_code_pointer_dict.values()
    assert pointer.module == LOCATION
    assert served.dagster_library_versions["dagster-k8s"] == "0.29.27"  # loaded for FOUREYES_EXECUTOR=k8s


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out (.dockerignore: a pattern matching it or a folder above it)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(re.fullmatch(_regex(p), prefix) for p in patterns for prefix in prefixes)


def _regex(pattern: str) -> str:
    pieces = re.split(r"(\*\*/|\*|\?)", pattern)
    wild = {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return "".join(wild.get(piece, re.escape(piece)) for piece in pieces)


def test_the_build_context_leaves_out_secrets_and_local_state_and_keeps_what_the_build_reads():
    lines = (DOCKERFILE.parent / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    left_out = [
        ".env",
        ".env.production",
        "config/tls.key",
        "secrets/token",
        ".foureyes/control.db",
        "dagster_home/dagster.yaml",
        "data/warehouse.db",
        "riskproj.duckdb",
        ".venv/bin/python",
        ".git/HEAD",
        "src/riskproj/__pycache__/definitions.cpython-311.pyc",
    ]
    kept = [
        "pyproject.toml",
        "src/riskproj/definitions.py",
        "src/riskproj/defs/exposure_review/defs.yaml",
        "wheels/foureyes-0.1.0-py3-none-any.whl",
        IMAGE_CONSTRAINTS,
        "constraints.txt",
    ]
    assert [p for p in left_out if not _ignored(p, patterns)] == []
    assert [p for p in kept if _ignored(p, patterns)] == []
