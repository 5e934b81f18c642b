"""The operator process: Kopf handlers, the one reconcile, carrying out decisions, the API client.

The I/O around the pure ``decision`` package: observe the cluster, ask ``decide``, create the
objects ``specs`` builds, write the status, emit Events and metrics, send webhooks, hold the
leader Lease.
"""
