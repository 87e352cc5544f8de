"""ECS Express Mode services (Create/Describe/Update/DeleteExpressGatewayService): refused.

An Express service is a Fargate service whose load balancer, target group, security groups and
scaling policies ECS provisions by itself. The lab teaches those parts one at a time (the
article's five steps), and does not build them for the caller; the refusal says so, with the
error ECS gives where a feature is not available.
"""
from orchestrator.frontend import EcsError
from orchestrator.frontend.operations import operation

REFUSED = ("CreateExpressGatewayService", "DescribeExpressGatewayService", "UpdateExpressGatewayService",
           "DeleteExpressGatewayService")
WHY = (
    "Fargate Lab does not provision ECS Express Mode services: create the load balancer, target group "
    "and service yourself (CreateLoadBalancer, CreateTargetGroup, CreateListener, CreateService), as "
    "the lab's five steps do."
)


def refusal(name):
    """The (error type, message) the lab answers ``name`` with."""
    return "UnsupportedFeatureException", WHY


def _refuse(ctx, params):
    """Refuse the call: Express Mode services are not built."""
    raise EcsError("UnsupportedFeatureException", WHY)


for _name in REFUSED:
    operation(_name)(_refuse)
