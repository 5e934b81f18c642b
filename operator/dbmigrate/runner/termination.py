"""A failed step's last words to Kubernetes: its error, in the container's termination message.

The operator tells a person why a step Job failed from the step's own words, not the Job
controller's ("BackoffLimitExceeded"). In a Job the step container's ``terminationMessagePath``
is a file the kubelet reads when the container ends and puts into the pod's status
(``containerStatuses[].state.terminated.message``), which the operator reads back without ever
reaching the database or the pod's log. Every failure message of a step goes through
``runner.failures.print_failure``, which calls ``write``; the file is named by env
``DBMIGRATE_TERMINATION_LOG`` (the Job sets it), so a step run by hand writes nothing. The text is
the message already scrubbed of passwords.
"""

from __future__ import annotations

import os

from dbmigrate.api.labels import TERMINATION_LOG_ENV

MAX_BYTES = 4096  # what the kubelet keeps of a termination message


def write(message: str) -> None:
    """Write ``message`` as the container's termination message (when in a Job; never raises)."""
    path = os.environ.get(TERMINATION_LOG_ENV)
    if not path:
        return
    data = message.strip().encode()[:MAX_BYTES]
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError:
        return  # no such file outside a container: the message is on stderr anyway
