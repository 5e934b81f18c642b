"""Database work with no Kubernetes: sources, history, apply, lint, backup, verify, rollback."""
