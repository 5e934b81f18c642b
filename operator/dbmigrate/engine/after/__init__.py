"""Checking after a migration: the indexes are there and valid (``verify``), the planner uses them
(``probes``), a broken one is rebuilt (``repair``), a version's schema is in place
(``readiness``)."""
