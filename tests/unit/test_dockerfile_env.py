"""The image's install steps, exercised without Docker: the build stage's own RUN command in a
copy of the files its COPY lines name (a clean venv, ``pip install .``, ``dbmigrate --help``);
and the Dockerfile's user, entrypoint and tool folder agree with the Helm chart.

pip reaches PyPI; its download cache is used (``--no-cache-dir`` only keeps the image small).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import dbmigrate
from dbmigrate.specs.jobs import RUN_AS, pod_security_context

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
CHART = ROOT / "Chart" / "dbmigrate-operator"
VENV = "/opt/dbmigrate"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def build_stage() -> list[tuple[str, str]]:
    steps = instructions()
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(starts) == 2, "expected a build stage and a runtime stage"
    return steps[starts[0] : starts[1]]


def copy_build_context(src: Path) -> None:
    """The files the build stage's COPY lines take from the build context."""
    ignore = shutil.ignore_patterns("*.egg-info", "__pycache__", "*.pyc")
    for word, args in build_stage():
        if word != "COPY":
            continue
        *sources, target = args.split()
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, src / target.rstrip("/"), ignore=ignore)
            else:
                shutil.copy(path, src / target / path.name)


def run_build_stage(src: Path, venv: Path, shims: Path) -> None:
    """The build stage's RUN line, with the venv at ``venv`` instead of /opt/dbmigrate."""
    (run,) = [args for word, args in build_stage() if word == "RUN"]
    command = run.replace(VENV, str(venv)).replace(" --no-cache-dir", "")
    shims.mkdir()
    (shims / "python3").symlink_to(sys.executable)  # `python3` in the RUN line, as in the image
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def output(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(1500)
def test_build_stage_installs_the_package_in_a_clean_venv(tmp_path: Path) -> None:
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    copy_build_context(src)
    run_build_stage(src, venv, tmp_path / "shims")
    exe, python = venv / "bin" / "dbmigrate", venv / "bin" / "python"
    help_text = output(exe, "--help").stdout
    assert "operator" in help_text and "crd" in help_text
    assert output(exe, "--version").stdout.strip() == f"dbmigrate {dbmigrate.__version__}"
    operator_help = output(exe, "operator", "--help")
    assert operator_help.returncode == 0, operator_help.stderr
    modules = "dbmigrate.controller.metrics, dbmigrate.logging_setup"
    where = output(python, "-c", f"import dbmigrate, {modules}; print(dbmigrate.__file__)")
    assert where.stdout.startswith(str(venv)), "the venv must use its installed copy, not the repo"
    assert output(python, "-c", "import pytest").returncode != 0, "dev tools leaked into the image"


def test_runtime_stage_is_slim_non_root_and_runs_dbmigrate() -> None:
    steps = instructions()
    froms = [args.split()[0] for word, args in steps if word == "FROM"]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    (base,) = [args for word, args in steps if word == "ARG" and args.startswith("BASE_IMAGE=")]
    assert "-slim-" in base
    assert ("USER", "10001:10001") in steps
    assert ("ENTRYPOINT", '["dbmigrate"]') in steps
    template = (CHART / "templates" / "deployment.yaml").read_text()
    assert "runAsUser: 10001" in template and "runAsGroup: 10001" in template


def test_step_jobs_run_as_the_image_user() -> None:
    """One uid everywhere: the image's USER, the chart's operator pod and the step Jobs (whose
    backups on a PVC must be readable by the rollback pod and by the next run's retention)."""
    (user,) = [args for word, args in instructions() if word == "USER"]
    assert user == f"{RUN_AS}:{RUN_AS}"
    assert pod_security_context()["runAsUser"] == RUN_AS
    assert pod_security_context()["fsGroup"] == RUN_AS


def test_pg_client_major_is_pinned_once() -> None:
    (major,) = re.findall(r"ARG PG_CLIENT_MAJOR=(\d+)", DOCKERFILE)
    assert int(major) >= 15, "pg_dump must be at least the test bed's PostgreSQL 15"
    assert '"postgresql-client-${PG_CLIENT_MAJOR}"' in DOCKERFILE
    assert "DBMIGRATE_PG_BIN=/usr/lib/postgresql/${PG_CLIENT_MAJOR}/bin" in DOCKERFILE


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == dbmigrate.__version__
