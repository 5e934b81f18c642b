"""The step commands: what runs in a step Job's pod, or on a person's machine, against PostgreSQL.

One module per step, each with its options (``add_arguments``) and its ``run(ctx)``: ``plan``,
``backup``, ``apply``, ``verify``, ``rollback`` and the standalone ``preflight``. ``dbmigrate
<step>`` is the same command by hand and in the Job, which adds ``--report-to NAMESPACE/NAME``
(and ``--run-id``); ``dbmigrate job <step>`` is its old spelling (``dbmigrate.cli.job``).
Shared pieces: ``context`` (StepContext, how the database is reached), ``lifecycle`` (SIGTERM,
exit codes, ``status.stepExit``), ``options`` (the flags every step shares), ``failures`` (a
failure's message and exit code), ``render``, ``migration_text`` and ``markdown`` (what is printed),
``reporting`` and ``status_report`` over ``kubeapi`` (the status writes). Imports ``api`` and
``engine``, never the operator's packages.
"""
