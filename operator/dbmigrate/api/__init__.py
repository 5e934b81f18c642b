"""API types of dbmigrate.io/v1alpha1: the single source of truth for spec and status."""
