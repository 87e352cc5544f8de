"""The frontend service (kube-apiserver): the ECS API at the root URL.

Every interface goes through ``call``: the HTTP API (after SigV4), the dashboard's forms and
tests alike, so validation and errors are the same everywhere.
"""


class EcsError(Exception):
    """An ECS error: its type (``__type`` on the wire), message and HTTP status."""

    def __init__(self, error_type, message, status=400):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status

    def as_json(self):
        """The error as the wire shows it: {"__type": …, "message": …}."""
        return {"__type": self.error_type, "message": self.message}


def call(account, operation, params, *, caller="", trace_id=""):
    """Run one ECS operation (e.g. "RunTask") for ``account`` with ``params``; returns the
    response dict, or raises EcsError. Validates like the HTTP API does."""
    from orchestrator.frontend.operations import dispatch

    return dispatch(account, operation, params, caller=caller, trace_id=trace_id)
