"""CloudWatch Logs, served by the frontend at the lab's endpoint (AWS JSON 1.1, target prefix
``Logs_20140328.``), per account and region: log groups, log streams and their events, written
by the agent for containers with the ``awslogs`` driver (``orchestrator/awslogs.py``) and by any
client with PutLogEvents. The Kubernetes counterpart is ``kubectl logs``, which reads the
node's files: here the events outlive the container, as on CloudWatch.

botocore's model (``get_service_model("logs")``) is the reference for every shape; errors are
Logs' own (``ResourceNotFoundException``, ``InvalidParameterException``…).
"""

from orchestrator.frontend import EcsError

TARGET_PREFIX = "Logs_20140328."


class LogsError(EcsError):
    """A CloudWatch Logs error: its ``__type`` and message, in the same JSON shape as ECS's."""
