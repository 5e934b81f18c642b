"""The operator: Kopf handlers, the pure state machine, Job builders, status reporting."""
