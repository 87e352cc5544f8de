"""Container instances: Fargate hides its fleet in the API, as on AWS.

A Fargate cluster registers no container instances of the account's, so ListContainerInstances
is empty and DescribeContainerInstances finds none. The fleet the lab's tasks run on stays in
view on the dashboard's instances pages and in the Django admin: that contrast is the lesson.
"""
from orchestrator.frontend import EcsError
from orchestrator.frontend.operations import _get_cluster, _missing, _paged_response, operation


@operation("ListContainerInstances")
def list_container_instances(ctx, params):
    """No ARNs: a Fargate cluster has no container instances of the account's."""
    _get_cluster(ctx, params.get("cluster"))
    return _paged_response("containerInstanceArns", [], None)


@operation("DescribeContainerInstances")
def describe_container_instances(ctx, params):
    """Every instance asked for is MISSING: Fargate's fleet is not the account's to describe."""
    _get_cluster(ctx, params.get("cluster"))
    refs = params["containerInstances"]
    if not 1 <= len(refs) <= 100:
        raise EcsError("InvalidParameterException", "containerInstances must list between 1 and 100 instances.")
    return {"containerInstances": [], "failures": [_missing(ref) for ref in refs]}
