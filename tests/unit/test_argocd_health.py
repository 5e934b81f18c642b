"""The Argo CD health script, run by a real Lua 5.1 (Argo CD's gopher-lua speaks 5.1).

Fed every status in tests/data/statuses (written from the status model, and captured by the
end-to-end tests): the expected health follows from the phase alone, so a captured status the
script misjudges fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.health_checks import LUA_SCRIPT as SCRIPT
from tests.health_checks import argocd_health
from tests.health_checks import expected_argocd_health as expected_health

ROOT = Path(__file__).resolve().parents[2]
STATUSES = sorted((ROOT / "tests" / "data" / "statuses").glob("*.json"))


def test_statuses_cover_every_health() -> None:
    healths = {expected_health(json.loads(path.read_text())) for path in STATUSES}
    assert healths == {"Healthy", "Progressing", "Suspended", "Degraded"}


@pytest.mark.parametrize("path", STATUSES, ids=[p.stem for p in STATUSES])
def test_health_of_each_status(path: Path) -> None:
    obj = json.loads(path.read_text())
    health, message = argocd_health(obj)
    assert health == expected_health(obj)
    assert message  # Argo CD shows it next to the health: never empty


def test_named_cases() -> None:
    by_name = {p.stem: json.loads(p.read_text()) for p in STATUSES}
    health, message = argocd_health(by_name["waiting-for-approval"])
    assert health == "Suspended"
    assert "kubectl -n analytics annotate dbm analytics dbmigrate.io/approve=" in message
    health, message = argocd_health(by_name["waiting-for-window"])
    assert (health, "2026-03-15T02:00:00Z" in message) == ("Suspended", True)
    health, message = argocd_health(by_name["stalled-missing-secret"])
    assert health == "Degraded" and "analytics-db" in message
    health, message = argocd_health(by_name["rolled-back"])
    assert health == "Degraded" and message.startswith("RolledBack: apply failed at 005")
    health, message = argocd_health(by_name["succeeded-new-generation"])
    assert (health, message) == ("Progressing", "The operator has not acted on generation 2 yet")


def test_new_resource_without_status_is_progressing() -> None:
    obj: dict[str, object] = {"apiVersion": "dbmigrate.io/v1alpha1", "kind": "DatabaseMigration"}
    obj["metadata"] = {"name": "m", "namespace": "ns", "generation": 1}
    assert argocd_health(obj)[0] == "Progressing"
    assert argocd_health({**obj, "status": {"conditions": []}})[0] == "Progressing"


def test_install_doc_embeds_the_same_script() -> None:
    """docs/install.md shows the script inside the argocd-cm snippet: it must be this one."""
    doc = (ROOT / "docs" / "install.md").read_text()
    indented = "".join(
        f"    {line}" if line.strip() else line for line in SCRIPT.splitlines(keepends=True)
    )
    assert indented in doc
