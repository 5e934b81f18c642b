"""The step commands: what runs in a step Job's pod, or on a person's machine, against PostgreSQL.

Each step (plan, backup, apply, verify, rollback, and the standalone preflight) calls the
``engine``, prints a readable summary and, given ``--report-to NAMESPACE/NAME``, writes its result
into that DatabaseMigration's status under its own key, through the pod's service account. Imports
``api`` and ``engine``, never the operator's packages.
"""
