"""The ``dbmigrate`` command: one sub-command per step, each in the module that owns it."""
