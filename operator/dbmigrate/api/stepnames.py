"""The steps of a migration run and the status keys each one owns: spelled here once.

A step Job's command writes its results into the DatabaseMigration's status under its own keys
(each status writer owns its subtree); the operator waits for exactly those keys before it moves
on, and clears them when a new run starts. ``REPORTS`` is that contract; ``LIVE_KEYS`` are
written while a step runs and are not waited for.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Step = Literal["plan", "backup", "apply", "verify", "rollback"]
STEPS: tuple[Step, ...] = get_args(Step)
STEP_PLAN: Final = "plan"
STEP_BACKUP: Final = "backup"
STEP_APPLY: Final = "apply"
STEP_VERIFY: Final = "verify"
STEP_ROLLBACK: Final = "rollback"

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

# The rollback check of a rollback on demand (a MigrationRollback): a Job outside the run's steps,
# written into the migration's status; it is no ``Step`` (no phase waits for it, no stepExit).
STEP_ROLLBACK_CHECK: Final = "rollback-check"
KEY_ROLLBACK_CHECK = "rollbackCheck"

REPORTS: dict[Step, tuple[str, ...]] = {
    STEP_PLAN: (KEY_PLAN, KEY_PREFLIGHT, KEY_DATABASE, KEY_LINT),  # lint unless the policy is off
    STEP_BACKUP: (KEY_BACKUP,),
    STEP_APPLY: (KEY_PROGRESS, KEY_APPLY),
    STEP_VERIFY: (KEY_VERIFICATION,),
    STEP_ROLLBACK: (KEY_ROLLBACK,),
}
LIVE_KEYS: tuple[str, ...] = (KEY_PROGRESS,)
STEP_KEYS: tuple[str, ...] = (*dict.fromkeys(k for keys in REPORTS.values() for k in keys),)
