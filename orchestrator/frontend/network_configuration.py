"""awsvpc networking as RunTask, CreateService and UpdateService take it (networkConfiguration).

Every Fargate task definition has networkMode awsvpc, and ECS wants to be told which subnets
(and security groups) a task's elastic network interface goes in: without networkConfiguration
it refuses the call. The lab gives each account one Docker network (its VPC); the subnets named
are kept on the task and shown in its ENI attachment. Every account has the same two default
subnets, subnet-a and subnet-b (a default VPC's subnets, one per availability zone), which the
dashboard's forms offer with subnet-a preselected; any other subnet id is accepted as given.
"""
from orchestrator.frontend import EcsError

DEFAULT_SUBNETS = ("subnet-a", "subnet-b")
DEFAULT_SUBNET = DEFAULT_SUBNETS[0]
# ECS's limits on AwsVpcConfiguration's lists.
MAX_SUBNETS, MAX_SECURITY_GROUPS = 16, 5
MISSING = "Network Configuration must be provided when networkMode 'awsvpc' is specified."


def subnets_of(account):
    """The subnets the dashboard offers an account: the default ones, then any other its load
    balancers and services named (first seen first)."""
    seen = list(DEFAULT_SUBNETS)
    for lb_subnets in account.load_balancers.values_list("subnets", flat=True):
        seen += [s for s in lb_subnets or () if isinstance(s, str)]
    for network in account.services.values_list("network_configuration", flat=True):
        seen += [s for s in ((network or {}).get("awsvpcConfiguration") or {}).get("subnets") or ()
                 if isinstance(s, str)]
    return list(dict.fromkeys(seen))


def check(params, td):
    """The request's networkConfiguration checked as ECS checks it for task definition ``td``
    (an awsvpc one must have one, with at least one subnet); returns it as stored."""
    network = params.get("networkConfiguration") or {}
    awsvpc = network.get("awsvpcConfiguration")
    if td.body.get("networkMode") == "awsvpc" and not awsvpc:
        raise EcsError("InvalidParameterException", MISSING)
    if awsvpc is not None:
        check_awsvpc(awsvpc)
    return network


def check_awsvpc(awsvpc):
    """An AwsVpcConfiguration's lists within ECS's limits, as ECS words its refusals."""
    subnets, groups = awsvpc.get("subnets") or [], awsvpc.get("securityGroups") or []
    if not subnets:
        raise EcsError("InvalidParameterException", "subnets can not be empty.")
    if len(subnets) > MAX_SUBNETS:
        raise EcsError("InvalidParameterException", f"subnets can have at most {MAX_SUBNETS} items.")
    if len(groups) > MAX_SECURITY_GROUPS:
        raise EcsError("InvalidParameterException", f"securityGroups can have at most {MAX_SECURITY_GROUPS} items.")
    for value in list(subnets) + list(groups):
        if not value:
            raise EcsError("InvalidParameterException", "subnets and securityGroups can not contain empty values.")
