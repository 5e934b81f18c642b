"""Pure builders of the Kubernetes objects the operator creates, as plain dicts.

A function here returns a Job, a ConfigMap, a Role or a name; it never calls the API server. The
step Job's command line (``commands``) is the contract with the step commands of ``runner``.
"""
