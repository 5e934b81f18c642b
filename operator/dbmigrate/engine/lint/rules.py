"""The rule catalogue: one stable id, name, severity and fix hint per rule.

Ids never change meaning once released (suppression comments in migration files name them), so a
rule that is retired keeps its number unused. The README of this package renders the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmigrate.api.lint import LintSeverity


@dataclass(frozen=True)
class Rule:
    """A lint rule: what it is called, how bad it is, and the default way to fix it."""

    id: str
    name: str
    severity: LintSeverity
    category: str
    summary: str
    hint: str


_RULES = (
    # -- the linter itself -------------------------------------------------------------------
    Rule(
        "DM001",
        "parse-error",
        "error",
        "syntax",
        "PostgreSQL's parser refuses the file",
        "Fix the SQL at the given position; the file cannot run as written.",
    ),
    Rule(
        "DM002",
        "suppression-without-reason",
        "error",
        "suppression",
        "A dbmigrate:ignore comment gives no reason",
        "Write `-- dbmigrate:ignore DM201 reason: <why it is safe>` on the line before "
        "the statement.",
    ),
    Rule(
        "DM003",
        "suppression-unknown-rule",
        "warning",
        "suppression",
        "A dbmigrate:ignore comment names a rule that does not exist",
        "Use a rule id (DM201) or name (create-index-blocking) from the rule table.",
    ),
    Rule(
        "DM004",
        "suppression-unused",
        "info",
        "suppression",
        "A dbmigrate:ignore comment waives nothing",
        "Remove the comment, or put it on the line right before the statement it is for.",
    ),
    Rule(
        "DM005",
        "do-block-not-linted",
        "warning",
        "syntax",
        "SQL the linter cannot see: built at run time inside a DO block (EXECUTE), or a DO "
        "block it cannot read",
        "Write the statements out as plain SQL so they are linted, or review them by hand and "
        "waive this finding with a reason.",
    ),
    Rule(
        "DM009",
        "linter-internal-error",
        "error",
        "syntax",
        "The linter could not analyse the file",
        "Report this as a bug of dbmigrate, with the file; the run stops to be safe.",
    ),
    # -- destructive ---------------------------------------------------------------------------
    Rule(
        "DM101",
        "drop-table",
        "error",
        "destructive",
        "DROP TABLE deletes a table and its data",
        "Rename the table first and drop it in a later release once nothing reads it; take "
        "a backup. Waive with a reason if the table is known to be unused.",
    ),
    Rule(
        "DM102",
        "drop-column",
        "error",
        "destructive",
        "DROP COLUMN deletes a column's data",
        "Stop reading and writing the column in the application first, then drop it in a "
        "later migration; waive with a reason once that is done.",
    ),
    Rule(
        "DM103",
        "drop-schema",
        "error",
        "destructive",
        "DROP SCHEMA deletes every object in it",
        "Drop the objects one by one in reviewed migrations, or waive with a reason.",
    ),
    Rule(
        "DM104",
        "truncate",
        "error",
        "destructive",
        "TRUNCATE deletes every row",
        "Delete in bounded batches with a WHERE clause, or waive with a reason.",
    ),
    Rule(
        "DM105",
        "delete-without-where",
        "error",
        "destructive",
        "DELETE without WHERE deletes every row",
        "Add a WHERE clause (and delete in batches on large tables).",
    ),
    Rule(
        "DM106",
        "update-without-where",
        "error",
        "destructive",
        "UPDATE without WHERE rewrites every row",
        "Add a WHERE clause and backfill in batches (WHERE id BETWEEN ...), outside the "
        "schema migration if the table is large.",
    ),
    Rule(
        "DM107",
        "drop-database",
        "error",
        "destructive",
        "DROP DATABASE deletes a database",
        "Databases are not dropped by schema migrations; do it by hand after a backup.",
    ),
    Rule(
        "DM108",
        "rename-breaks-clients",
        "warning",
        "destructive",
        "Renaming a table or column breaks the running application",
        "Add the new name (column copy or view), move the application, drop the old name later.",
    ),
    Rule(
        "DM109",
        "drop-object",
        "warning",
        "destructive",
        "Dropping a view, sequence, type, function or other object may break clients",
        "Make sure nothing uses the object any more; waive with a reason.",
    ),
    # -- blocking ------------------------------------------------------------------------------
    Rule(
        "DM201",
        "create-index-blocking",
        "error",
        "blocking",
        "CREATE INDEX without CONCURRENTLY blocks writes to an existing table for the build",
        "Use CREATE INDEX CONCURRENTLY IF NOT EXISTS (dbmigrate runs it outside a transaction).",
    ),
    Rule(
        "DM202",
        "constraint-validation-blocking",
        "error",
        "blocking",
        "Adding a foreign key or check constraint scans the table under a strong lock",
        "Add it with NOT VALID, then run ALTER TABLE ... VALIDATE CONSTRAINT in a later "
        "statement (it takes a weaker lock).",
    ),
    Rule(
        "DM203",
        "set-not-null-blocking",
        "error",
        "blocking",
        "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
        "Add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL "
        "12+ skips the scan) and drop the check.",
    ),
    Rule(
        "DM204",
        "alter-column-type-blocking",
        "error",
        "blocking",
        "ALTER COLUMN TYPE usually rewrites the table under an ACCESS EXCLUSIVE lock",
        "Add a new column, backfill in batches, switch the application, drop the old column; "
        "waive with a reason for a binary-compatible change (varchar(n) to text).",
    ),
    Rule(
        "DM205",
        "add-column-rewrites-table",
        "error",
        "blocking",
        "ADD COLUMN with a volatile default, identity, serial or stored generated column "
        "rewrites the table",
        "Add the column without a default (or with a constant one), backfill in batches, then "
        "SET DEFAULT for new rows.",
    ),
    Rule(
        "DM206",
        "vacuum-full",
        "error",
        "blocking",
        "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
        "Use plain VACUUM, or pg_repack outside the migration.",
    ),
    Rule(
        "DM207",
        "cluster",
        "error",
        "blocking",
        "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
        "Use pg_repack outside the migration, or waive with a reason for a small table.",
    ),
    Rule(
        "DM208",
        "reindex-blocking",
        "error",
        "blocking",
        "REINDEX without CONCURRENTLY blocks writes (and reads using the index)",
        "Use REINDEX ... CONCURRENTLY (PostgreSQL 12+).",
    ),
    Rule(
        "DM209",
        "unique-constraint-blocking",
        "error",
        "blocking",
        "Adding a UNIQUE or PRIMARY KEY constraint builds its index under an ACCESS EXCLUSIVE lock",
        "CREATE UNIQUE INDEX CONCURRENTLY first, then ALTER TABLE ... ADD CONSTRAINT name "
        "UNIQUE USING INDEX (or PRIMARY KEY USING INDEX).",
    ),
    Rule(
        "DM210",
        "add-column-foreign-key",
        "warning",
        "blocking",
        "ADD COLUMN ... REFERENCES locks the referenced table (SHARE ROW EXCLUSIVE)",
        "Add the column first, then the foreign key with NOT VALID, then VALIDATE it.",
    ),
    Rule(
        "DM211",
        "add-required-column",
        "error",
        "blocking",
        "ADD COLUMN ... NOT NULL without a default fails on a table that has rows",
        "Add a constant DEFAULT, or add the column nullable, backfill, then enforce NOT NULL.",
    ),
    Rule(
        "DM212",
        "drop-index-blocking",
        "warning",
        "blocking",
        "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table",
        "Use DROP INDEX CONCURRENTLY IF EXISTS.",
    ),
    Rule(
        "DM213",
        "detach-partition-blocking",
        "warning",
        "blocking",
        "DETACH PARTITION without CONCURRENTLY locks the parent table (ACCESS EXCLUSIVE)",
        "Use ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+).",
    ),
    Rule(
        "DM214",
        "explicit-lock",
        "warning",
        "blocking",
        "LOCK TABLE holds the named lock until the file's transaction ends",
        "Let each statement take the lock it needs; if an explicit lock is needed, take the "
        "weakest mode that works, with NOWAIT or a short lock_timeout, and keep the statements "
        "after it few and fast (a file of its own).",
    ),
    Rule(
        "DM215",
        "timeout-disabled",
        "error",
        "blocking",
        "SET lock_timeout / statement_timeout = 0 (or RESET / DEFAULT) in a file",
        "Remove it (pg_dump writes it in its header): the run sets both timeouts, and a file "
        "may only lower them (e.g. SET lock_timeout = '1s').",
    ),
    # -- idempotency ---------------------------------------------------------------------------
    Rule(
        "DM301",
        "create-not-idempotent",
        "warning",
        "idempotency",
        "CREATE without IF NOT EXISTS fails when a half-applied migration is run again",
        "Add IF NOT EXISTS (or use CREATE OR REPLACE).",
    ),
    Rule(
        "DM302",
        "drop-not-idempotent",
        "warning",
        "idempotency",
        "DROP without IF EXISTS fails when a half-applied migration is run again",
        "Add IF EXISTS.",
    ),
    # -- transactions --------------------------------------------------------------------------
    Rule(
        "DM401",
        "concurrently-in-transaction",
        "error",
        "transaction",
        "This statement cannot run inside a transaction block (BEGIN ... COMMIT)",
        "Move it out of the BEGIN ... COMMIT block; dbmigrate runs it on its own in autocommit.",
    ),
    Rule(
        "DM402",
        "transaction-wrapper",
        "warning",
        "transaction",
        "A BEGIN ... COMMIT around the whole file is redundant: dbmigrate drops it",
        "Remove BEGIN and COMMIT: each file already runs in one transaction (statements that "
        "cannot are run on their own).",
    ),
    Rule(
        "DM403",
        "transaction-control",
        "error",
        "transaction",
        "BEGIN, COMMIT, ROLLBACK or SAVEPOINT inside a file: dbmigrate refuses to run it",
        "Remove it: dbmigrate runs each file in one transaction, or statement by statement "
        "when it contains CONCURRENTLY and the like; split the file in two if you need two "
        "transactions.",
    ),
    # -- indexes -------------------------------------------------------------------------------
    Rule(
        "DM501",
        "non-immutable-index-expression",
        "error",
        "index",
        "An index predicate or expression calls a function that is not IMMUTABLE",
        "PostgreSQL refuses it. Use a fixed value (a constant date, a boolean column kept up "
        "to date) and filter the moving window in the query instead.",
    ),
    Rule(
        "DM601",
        "unique-index-duplicates",
        "warning",
        "index",
        "A unique index on an existing table fails (and leaves an INVALID index) if "
        "duplicates exist",
        "Run the check query first and clean up the duplicates; preflight runs it.",
    ),
)

RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}
RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in _RULES}


def find_rule(key: str) -> Rule | None:
    """The rule named by an id (DM201, case-insensitive) or a name (create-index-blocking)."""
    return RULES.get(key.upper()) or RULES_BY_NAME.get(key.lower())
