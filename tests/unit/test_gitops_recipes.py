"""The GitOps recipes of docs/gitops.md, read as a user copies them: every YAML block parses, every
DatabaseMigration in them is valid for the CRD's models, Argo CD's waves put the migration before
the workload (and the health check is registered under the key Argo CD looks up), Flux's
application Kustomization depends on one that health-checks the DatabaseMigration, and the init
container runs `dbmigrate wait` with arguments the command accepts."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from dbmigrate import API_GROUP, API_VERSION, KIND
from dbmigrate.api.spec import DatabaseMigrationSpec
from dbmigrate.cli import wait as wait_cmds

DOC = Path(__file__).resolve().parents[2] / "docs" / "gitops.md"
HEALTH_KEY = f"resource.customizations.health.{API_GROUP}_{KIND}"


def documents() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3, "the page's three recipes: argocd-cm, Argo CD, Flux"
    return [d for block in blocks for d in yaml.safe_load_all(block) if d]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def wave(doc: dict[str, Any]) -> int:
    return int(doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_every_migration_in_the_recipes_is_valid() -> None:
    migrations = of_kind(KIND)
    assert migrations
    for doc in migrations:
        assert doc["apiVersion"] == f"{API_GROUP}/{API_VERSION}"
        DatabaseMigrationSpec.model_validate(doc["spec"])


def test_argocd_applies_the_migration_in_an_earlier_wave_with_the_health_check() -> None:
    (config,) = [d for d in of_kind("ConfigMap") if d["metadata"]["name"] == "argocd-cm"]
    assert HEALTH_KEY in config["data"]
    (migration,) = of_kind(KIND)
    (app,) = of_kind("Deployment")
    assert wave(migration) < wave(app)


def test_flux_app_depends_on_a_kustomization_that_health_checks_the_migration() -> None:
    flux = {d["metadata"]["name"]: d for d in of_kind("Kustomization")}
    (migration,) = of_kind(KIND)
    (app,) = [d for d in flux.values() if d["spec"].get("dependsOn")]
    (needed,) = app["spec"]["dependsOn"]
    checks = flux[needed["name"]]["spec"]["healthChecks"]
    wanted = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": migration["metadata"]["name"],
        "namespace": migration["metadata"]["namespace"],
    }
    assert wanted in checks
    assert flux[needed["name"]]["spec"]["prune"] is False  # the status is the run's evidence


def test_the_init_container_runs_a_wait_the_command_accepts() -> None:
    (app,) = of_kind("Deployment")
    (init,) = app["spec"]["template"]["spec"]["initContainers"]
    parser = argparse.ArgumentParser(prog="dbmigrate")
    wait_cmds.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(init["args"])
    assert args.command == "wait" and args.version == 5
    assert [e["name"] for e in init["env"]] == ["DATABASE_URL"]
