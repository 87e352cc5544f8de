"""CloudWatch Logs, served by the frontend at the lab's endpoint (AWS JSON 1.1, target prefix
``Logs_20140328.``), per account and region: log groups, log streams and their events, written
by the agent for containers with the ``awslogs`` driver (``orchestrator/awslogs.py``) and by any
client with PutLogEvents. The Kubernetes counterpart is ``kubectl logs``, which reads the
node's files: here the events outlive the container, as on CloudWatch.

botocore's model (``get_service_model("logs")``) is the reference for every shape, checked by the
shared ``JsonService``; errors are Logs' own (``ResourceNotFoundException``,
``InvalidParameterException``…); the operations are in ``operations``.
"""
from orchestrator.frontend.json_service import JsonService
from orchestrator.frontend.logs.operations import OPERATIONS, SAFE_PARAMS, LogsError

SERVICE = JsonService("logs", OPERATIONS, invalid="InvalidParameterException", safe_params=SAFE_PARAMS,
                      server_error="ServiceUnavailableException", error=LogsError)
TARGET_PREFIX = SERVICE.target_prefix


def api(request):
    """The HTTP face of CloudWatch Logs."""
    return SERVICE.api(request)
