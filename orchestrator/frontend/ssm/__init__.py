"""AWS Systems Manager Parameter Store (the parameters a task's ``secrets`` name), at POST / with
``X-Amz-Target: AmazonSSM.<Operation>``; the operations are in ``operations``."""
from orchestrator.frontend.json_service import JsonService
from orchestrator.frontend.ssm.operations import OPERATIONS, SAFE_PARAMS

SERVICE = JsonService("ssm", OPERATIONS, invalid="ValidationException", safe_params=SAFE_PARAMS, patterns=False)
TARGET_PREFIX = SERVICE.target_prefix


def api(request):
    """The HTTP face of Parameter Store."""
    return SERVICE.api(request)
