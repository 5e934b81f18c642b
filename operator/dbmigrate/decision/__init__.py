"""The operator's pure decisions: ``decide(observed) -> Decision`` and what it is built from.

Runs in the operator process, but does no I/O and reads no clock but ``observed.now``: the gates
(approval, window, one run per database), the phase transitions, the emergency rollback, the
conditions written, the notifications due, the spec a run is pinned to. Imports only ``api`` and
the object builders of ``specs``.
"""
