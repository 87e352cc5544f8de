"""Application Auto Scaling (the HorizontalPodAutoscaler of ECS services), at POST / with
``X-Amz-Target: AnyScaleFrontendService.<Operation>``; the operations are in ``operations``,
the decisions in ``orchestrator/service_autoscaler.py``."""
from orchestrator.frontend.application_autoscaling.operations import OPERATIONS, SAFE_PARAMS
from orchestrator.frontend.json_service import JsonService

SERVICE = JsonService("application-autoscaling", OPERATIONS, invalid="ValidationException", safe_params=SAFE_PARAMS,
                      server_error="InternalServiceException")
TARGET_PREFIX = SERVICE.target_prefix


def api(request):
    """The HTTP face of Application Auto Scaling."""
    return SERVICE.api(request)
