"""AWS Secrets Manager (the secrets a task's ``secrets`` name by ARN), at POST / with
``X-Amz-Target: secretsmanager.<Operation>``; the operations are in ``operations``."""
from orchestrator.frontend.json_service import JsonService
from orchestrator.frontend.secretsmanager.operations import OPERATIONS, SAFE_PARAMS

SERVICE = JsonService("secretsmanager", OPERATIONS, invalid="InvalidParameterException", safe_params=SAFE_PARAMS,
                      server_error="InternalServiceError")
TARGET_PREFIX = SERVICE.target_prefix


def api(request):
    """The HTTP face of Secrets Manager."""
    return SERVICE.api(request)
