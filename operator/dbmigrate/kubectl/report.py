"""``kubectl dbmigrate report NAME``: a support bundle (zip) of everything about one migration.

What a maintainer asks for first, in one file to attach to an issue: the resource, its Jobs,
pods and Events as YAML, the MigrationRollback requests that name it, each step pod's log in
run order, the status screen, the plan as the
Markdown comment ``dbmigrate plan --output markdown`` writes (``runner/markdown.py``) and the lint
as SARIF (``cli/ci_formats.py``). Secrets are masked in every file: passwords in URLs and
``password=`` settings (``logging_setup.redact``), the literal values of env vars whose names
say they hold a secret, and every value of the Secret the migration names, read only to learn
what to mask (without ``get`` on that Secret the patterns still apply; README.txt says which).
Secret objects themselves are never put in the bundle.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from dbmigrate.api.evidence import PreflightResult
from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.api.lint import LintReport
from dbmigrate.api.plan import PlanResult
from dbmigrate.cli.ci_formats import sarif_log
from dbmigrate.kubectl.client import ROLLBACKS, SECRETS, Client, PluginError
from dbmigrate.kubectl.main import connect, subcommand
from dbmigrate.kubectl.objects import Snapshot, meta, snapshot
from dbmigrate.kubectl.screens import status_screen
from dbmigrate.logging_setup import MASK, redact, register_conninfo, register_secret
from dbmigrate.runner.markdown import plan_markdown
from dbmigrate.specs.jobs import CONTAINER

SECRET_NAME = re.compile(r"(?i)pass|secret|token|key|cred|dsn|ur[il]")
EXAMPLES = """  kubectl dbmigrate report analytics -n shop   # dbmigrate-report-analytics-<time>.zip
  kubectl dbmigrate report analytics -o /tmp/analytics.zip"""


def mask_env(value: Any) -> Any:
    """``value`` (a JSON tree) with the literal ``value`` of every env var whose name says it
    holds a secret replaced by the mask (``valueFrom`` references are kept: they hold none)."""
    if isinstance(value, list):
        return [mask_env(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    out = {key: mask_env(item) for key, item in value.items()}
    name = out.get("name")
    if isinstance(name, str) and "value" in out and SECRET_NAME.search(name):
        out["value"] = MASK
    return out


def strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object without managedFields (noise) and with its secrets masked."""
    copy = dict(obj)
    metadata = dict(copy.get("metadata") or {})
    metadata.pop("managedFields", None)
    copy["metadata"] = metadata
    masked: dict[str, Any] = mask_env(copy)
    return masked


def learn_secret(kube: Client, migration: Mapping[str, Any]) -> str:
    """Register every value of the migration's Secret for masking; says what was done."""
    ref = ((migration.get("spec") or {}).get("database") or {}).get("secretRef") or {}
    name = ref.get("name")
    if not name:
        return "the migration names no Secret"
    try:
        secret = kube.get(SECRETS, str(name))
    except PluginError as exc:
        return f"Secret {name} could not be read ({exc}); masked by pattern only"
    if secret is None:
        return f"Secret {name} does not exist; masked by pattern only"
    for raw in (secret.get("data") or {}).values():
        try:
            text = base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # not text: it cannot appear in the text files of the bundle either
        register_conninfo(text)
        register_secret(text)
    return f"every value of Secret {name} is masked, as are passwords in URLs and settings"


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _plan_files(status: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    notes: list[str] = []
    try:
        lint = LintReport.model_validate(status["lint"]) if status.get("lint") else None
        preflight = (
            PreflightResult.model_validate(status["preflight"]) if status.get("preflight") else None
        )
        if status.get("plan"):
            plan = PlanResult.model_validate(status["plan"])
            files["plan.md"] = plan_markdown(plan, lint, preflight)
        else:
            notes.append("plan.md: the status has no plan yet")
        if lint is not None:
            sarif = sarif_log(lint, 0 if lint.passed else 1)
            files["lint.sarif"] = json.dumps(sarif, indent=2) + "\n"
        else:
            notes.append("lint.sarif: the status has no lint report")
    except ValueError as exc:  # pydantic's ValidationError: a status of another version
        notes.append(f"plan.md / lint.sarif: the status does not read as this version's: {exc}")
    return files, notes


def bundle_files(kube: Client, snap: Snapshot, secret_note: str) -> dict[str, str]:
    """Every file of the bundle, by name, before masking."""
    now = datetime.now(UTC)
    files: dict[str, str] = {
        "migration.yaml": _yaml(strip(snap.migration)),
        "jobs.yaml": _yaml([strip(j.job) for j in snap.jobs]),
        "pods.yaml": _yaml([strip(p) for _, p in snap.pods()]),
        "events.yaml": _yaml([strip(e) for e in snap.events]),
        "status.txt": "\n".join(status_screen(snap, now)) + "\n",
    }
    planned, notes = _plan_files(snap.status)
    files.update(planned)
    try:
        requests = [
            r for r in kube.items(ROLLBACKS) if (r.get("spec") or {}).get("migration") == snap.name
        ]
        files["rollbacks.yaml"] = _yaml([strip(r) for r in requests])
    except PluginError as exc:  # a cluster without the request resource, or no right to list
        notes.append(f"rollbacks.yaml: the MigrationRollback requests could not be listed ({exc})")
    for i, (job, pod) in enumerate(snap.pods(), start=1):
        name = str(meta(pod).get("name"))
        try:
            text = kube.pod_log(name, CONTAINER)
        except PluginError as exc:
            notes.append(f"logs/{name}: unavailable ({exc})")
            continue
        files[f"logs/{i:02d}-{job.step}-{name}.log"] = text
    files["README.txt"] = (
        "\n".join(
            [
                f"dbmigrate support bundle of DatabaseMigration {snap.namespace}/{snap.name}",
                f"made {now.isoformat(timespec='seconds')} by kubectl dbmigrate report",
                "",
                "migration.yaml  the resource (spec and status), without managedFields",
                "jobs.yaml       its step Jobs, in run order",
                "pods.yaml       their pods",
                "events.yaml     the Events about all of them",
                "rollbacks.yaml  the MigrationRollback requests naming it (the audit of undos)",
                "status.txt      what `kubectl dbmigrate status` shows",
                "plan.md         the plan, lint and preflight as Markdown",
                "lint.sarif      the lint report as SARIF 2.1.0",
                "logs/           each step pod's log, in run order",
                "",
                f"secrets: {secret_note}",
                *(f"note: {n}" for n in notes),
            ]
        )
        + "\n"
    )
    return files


def write_bundle(path: Path, files: Mapping[str, str]) -> None:
    """Write the zip, every file masked."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, redact(text))


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    try:
        snap = snapshot(kube, args.name)
        note = learn_secret(kube, snap.migration)
        files = bundle_files(kube, snap, note)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = Path(args.output or f"dbmigrate-report-{args.name}-{stamp}.zip")
        write_bundle(path, files)
        print(f"wrote {path} ({len(files)} files); secrets: {note}")
        return EXIT_OK
    finally:
        kube.close()


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subcommand(
        subparsers,
        common,
        "report",
        "a support bundle (zip): resource, Jobs, pods, Events, logs, plan, lint; secrets masked",
        EXAMPLES,
    )
    parser.add_argument("name", metavar="NAME", help="the DatabaseMigration")
    parser.add_argument("-o", "--output", metavar="FILE", help="the zip to write")
    parser.set_defaults(func=run)
