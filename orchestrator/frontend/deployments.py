"""Service deployments: a service's rollouts, one Deployment row each (PRIMARY, ACTIVE, INACTIVE).

The rollout itself (rolling limits, circuit breaker, restart throttling) is the cluster
manager's, in ``orchestrator.deployments``; this module writes the rows it acts on.
"""
import json

from django.utils import timezone

from orchestrator.frontend import EcsError
from orchestrator.models import Deployment

DEFAULT_DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}



def _deployment_configuration(given, current=None):
    """The service's deploymentConfiguration: ``given`` over ``current`` over ECS's defaults."""
    conf = json.loads(json.dumps(current or DEFAULT_DEPLOYMENT_CONFIGURATION))
    for key, value in (given or {}).items():
        if key == "deploymentCircuitBreaker":
            conf[key] = {**conf.get(key, {}), **value}
        else:
            conf[key] = value
    if not 0 <= conf.get("minimumHealthyPercent", 100) <= 100:
        raise EcsError("InvalidParameterException", "minimumHealthyPercent must be between 0 and 100.")
    if not 100 <= conf.get("maximumPercent", 200) <= 400:
        raise EcsError("InvalidParameterException", "maximumPercent must be between 100 and 400.")
    return conf


def _new_deployment(service):
    """Make a new PRIMARY deployment for the service's task definition; older PRIMARY ones become ACTIVE."""
    now = timezone.now()
    service.deployments.filter(status=Deployment.PRIMARY).update(status=Deployment.ACTIVE, updated_at=now)
    return Deployment.objects.create(
        service=service, deployment_id=Deployment.new_id(), status=Deployment.PRIMARY,
        task_definition=service.task_definition, desired_count=service.desired_count,
        rollout_state=Deployment.IN_PROGRESS, created_at=now, updated_at=now,
    )
