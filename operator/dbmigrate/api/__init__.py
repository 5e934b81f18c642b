"""The vocabulary every other package shares, importing nothing of theirs.

The API types of dbmigrate.io/v1alpha1 (the single source of truth for spec, status and the CRD)
and the contracts between the operator, the step pods and their users, each in one module:
exit codes (``exitcodes``), condition types and reasons (``conditions``), label, annotation and
pod environment keys (``labels``), Go-like durations as the spec writes them (``durations``).
"""
