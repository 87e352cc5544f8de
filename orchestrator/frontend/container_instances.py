"""Container instances: Fargate's shared fleet, as each cluster sees it."""
from orchestrator.frontend import EcsError, shapes
from orchestrator.frontend.operations import _get_cluster, _missing, _page, _paged_response, operation
from orchestrator.models import ContainerInstance


@operation("ListContainerInstances")
def list_container_instances(ctx, params):
    """The fleet's instances, as ARNs seen from this cluster (the fleet is shared by all clusters)."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    rows = ContainerInstance.objects.exclude(status=ContainerInstance.INACTIVE)
    if params.get("status"):
        rows = ContainerInstance.objects.filter(status=params["status"])
    account_id = ctx.account.account_id
    items, token = _page(rows.order_by("pk"), params, lambda ci: ci.arn_for(account_id, cluster.name))
    return _paged_response("containerInstanceArns", items, token)


@operation("DescribeContainerInstances")
def describe_container_instances(ctx, params):
    """Registered and remaining CPU and memory of fleet instances, by id or ARN."""
    cluster = _get_cluster(ctx, params.get("cluster"))
    refs = params["containerInstances"]
    if not 1 <= len(refs) <= 100:
        raise EcsError("InvalidParameterException", "containerInstances must list between 1 and 100 instances.")
    account_id = ctx.account.account_id
    instances, failures = [], []
    for ref in refs:
        instance = ContainerInstance.objects.filter(instance_id=ref.rsplit("/", 1)[-1]).first()
        if instance is None:
            failures.append(_missing(ref))
        else:
            instances.append(shapes.container_instance_shape(instance, account_id, cluster.name))
    return {"containerInstances": instances, "failures": failures}
