"""The steps of a migration run and the status keys each one owns: spelled here once.

A step Job's command writes its results into the DatabaseMigration's status under its own keys
(each status writer owns its subtree); the operator waits for exactly those keys before it moves
on, and clears them when a new run starts. ``REPORTS`` is that contract.
"""

from __future__ import annotations

from typing import Literal, get_args

Step = Literal["plan", "backup", "apply", "verify", "rollback"]
STEPS: tuple[Step, ...] = get_args(Step)

# Status keys (as on the wire, in the resource's status) the step commands write.
KEY_DATABASE = "database"  # the server's identity, compared across resources
KEY_LINT = "lint"
KEY_PREFLIGHT = "preflight"
KEY_PLAN = "plan"
KEY_BACKUP = "backup"
KEY_PROGRESS = "progress"  # live, while the apply runs
KEY_APPLY = "apply"
KEY_VERIFICATION = "verification"
KEY_ROLLBACK = "rollback"
KEY_STEP_EXIT = "stepExit"  # every step Job's last word: its exit code

REPORTS: dict[Step, tuple[str, ...]] = {
    "plan": (KEY_DATABASE, KEY_LINT, KEY_PREFLIGHT, KEY_PLAN),  # lint unless the policy is off
    "backup": (KEY_BACKUP,),
    "apply": (KEY_PROGRESS, KEY_APPLY),
    "verify": (KEY_VERIFICATION,),
    "rollback": (KEY_ROLLBACK,),
}
STEP_KEYS: tuple[str, ...] = (*dict.fromkeys(k for keys in REPORTS.values() for k in keys),)
