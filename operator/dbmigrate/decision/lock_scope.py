"""Which DatabaseMigrations the lock gate reads: those labelled with its database, and no label.

The lock gate (``gate_rules.lock_holder``) compares ``status.database.key``, which only the plan
step knows. Reading every DatabaseMigration to compare it made a thousand migrations cost a
million objects read; instead each DatabaseMigration carries the label ``dbmigrate.io/database``
with a digest of that key (``database_label``; ``UNPLANNED`` while the status has no database),
and the gate lists only the migrations labelled like itself plus those with no label at all
(``lock_selectors``): resources from before the label existed, and new ones the operator has not
reconciled yet. Both lists stay small however many migrations there are.

Why no holder is missed (fail closed): a migration holds or waits for its database only in a
phase the operator writes (``gate_rules.holds_database``, ``WaitingForLock``), and the operator
writes a status only after the label matches the database that status names (``label_fix`` is
applied first; if that patch fails, nothing is written). The plan step, the only writer of
``status.database``, runs while the phase is Planning, which neither holds nor waits. A label
somebody removed puts the migration among the unlabelled, which are always read. Two keys with
the same digest only make the gate read one migration more: the keys themselves are compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from dbmigrate.api.labels import DATABASE_UNPLANNED, LABEL_DATABASE
from dbmigrate.api.status import DatabaseMigrationStatus

UNPLANNED = DATABASE_UNPLANNED  # the value before the plan step identified the database
DIGEST_CHARS = 40  # of sha256's hex: a label value has at most 63 characters


def database_label(status: DatabaseMigrationStatus) -> str:
    """The label value a DatabaseMigration with ``status`` must carry."""
    if status.database is None:
        return UNPLANNED
    return hashlib.sha256(status.database.key.encode()).hexdigest()[:DIGEST_CHARS]


def label_fix(labels: Mapping[str, str], status: DatabaseMigrationStatus) -> dict[str, str] | None:
    """The labels to merge into the resource so its label matches ``status`` (None: it does)."""
    wanted = database_label(status)
    if labels.get(LABEL_DATABASE) == wanted:
        return None
    return {LABEL_DATABASE: wanted}


def lock_selectors(status: DatabaseMigrationStatus) -> tuple[str, ...]:
    """The label selectors whose union holds every migration that may hold or wait for the
    database of ``status``, in the order to list them: no label at all first, then the same
    label (a migration labelled between the two lists is then in the second; the other order
    could miss it)."""
    return (f"!{LABEL_DATABASE}", f"{LABEL_DATABASE}={database_label(status)}")
