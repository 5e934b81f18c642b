"""``dbmigrate job <step>``: the old spelling of each step command, kept as an alias.

The operator's Jobs used to run ``dbmigrate job plan|backup|apply|verify|rollback``; a Job now
runs ``dbmigrate <step> --report-to NAMESPACE/NAME ...`` (``dbmigrate.specs.commands``). The
alias builds each step's parser with the same function and runs the same function as
``dbmigrate <step>``; only its defaults are the old Job command's (each step module's
``JOB_DEFAULTS``: e.g. ``job apply`` retries 5 times, bounds a statement at 6 hours, rewrites
CREATE INDEX to CONCURRENTLY and only warns about lint) and so are the options it requires
(``JOB_REQUIRED``: ``--run-id`` always, ``--plan-hash`` for apply, ``--strategy`` for rollback).
The old spellings (``--backup-dir``, ``--backup-path``, ``--strategy RestoreBackup``, ...) are
accepted by every step command.
"""

from __future__ import annotations

import argparse

from dbmigrate.runner import apply, backup, plan, rollback, verify
from dbmigrate.runner.lifecycle import add_step_parser
from dbmigrate.runner.options import require

STEP_MODULES = (plan, backup, apply, verify, rollback)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``job`` with its five steps."""
    job = subparsers.add_parser(
        "job",
        help="the step commands with the old Job defaults (alias of dbmigrate <step>)",
        description="The old spelling of dbmigrate plan|backup|apply|verify|rollback, with the "
        "defaults the step Jobs had.",
    )
    steps = job.add_subparsers(dest="step", metavar="STEP", required=True)
    for module in STEP_MODULES:
        parser = add_step_parser(
            steps, module.STEP, module.SUMMARY, module.add_arguments, module.run
        )
        parser.set_defaults(**module.JOB_DEFAULTS, log_format="text")
        require(parser, module.JOB_REQUIRED)
