"""Tags of clusters, task definitions, tasks and services: TagResource, UntagResource, ListTagsForResource."""
from django.utils import timezone

from orchestrator import bus
from orchestrator.frontend import EcsError, wire
from orchestrator.frontend.operations import _ARN_RE, MAX_TAGS, _check_tags, in_region, operation
from orchestrator.models import Cluster, Service, Task, TaskDefinition, region


def _merge_tags(existing, new):
    """Tags after TagResource: new values overwrite those of the same key."""
    merged = {tag["key"]: tag["value"] for tag in existing}
    merged.update({tag["key"]: tag["value"] for tag in new})
    tags = [{"key": k, "value": v} for k, v in merged.items()]
    if len(tags) > MAX_TAGS:
        raise EcsError("InvalidParameterException", f"A resource can have at most {MAX_TAGS} tags.")
    return tags


def _tagged_resource(ctx, arn):
    """The row an ARN names (cluster, task definition, task or service), for the tag operations."""
    match = _ARN_RE.fullmatch(arn)
    if not match:
        raise EcsError("InvalidParameterException", "The ARN provided is not valid.")
    if match.group(1) != ctx.account.account_id:
        raise EcsError("AccessDeniedException", "The resource belongs to another account.")
    if not in_region(arn):
        raise EcsError("InvalidParameterException", f"The ARN names another region than the call's, {region()}.")
    kind, rest = match.group(2), match.group(3)
    resource, publish_kind = None, kind.replace("-", "_")
    if kind == "cluster":
        resource = Cluster.objects.filter(account=ctx.account, region=region(), name=rest).first()
        if resource is None:
            raise EcsError("ClusterNotFoundException", "Cluster not found.")
        return resource, publish_kind
    if kind == "task-definition":
        family, _, revision = rest.partition(":")
        number = wire.ascii_int(revision, max_digits=9)
        if number is not None:
            resource = TaskDefinition.objects.filter(account=ctx.account, region=region(), family=family,
                                                      revision=number).first()
    elif kind == "task":
        resource = Task.objects.filter(account=ctx.account, cluster__region=region(),
                                       task_id=rest.rsplit("/", 1)[-1]).first()
    elif kind == "service":
        cluster_name, _, name = rest.rpartition("/")
        rows = Service.objects.filter(account=ctx.account, cluster__region=region(), name=name)
        if cluster_name:
            rows = rows.filter(cluster__name=cluster_name)
        resource = rows.exclude(status=Service.INACTIVE).first() or rows.order_by("-pk").first()
    else:
        raise EcsError("InvalidParameterException", f"Tagging is not supported for {kind[:32]} resources.")
    if resource is None:
        raise EcsError("ResourceNotFoundException", "The specified resource could not be found.")
    return resource, publish_kind


def _save_tags(resource, kind):
    """Save a resource's tags (tasks and services also say when they changed) and publish it."""
    fields = ["tags"]
    if isinstance(resource, (Task, Service)):
        resource.updated_at = timezone.now()
        fields.append("updated_at")
    resource.save(update_fields=fields)
    bus.publish(kind, resource.pk)


@operation("TagResource")
def tag_resource(ctx, params):
    """Add or overwrite tags on a cluster, task definition, task or service."""
    resource, kind = _tagged_resource(ctx, params["resourceArn"])
    resource.tags = _merge_tags(resource.tags, _check_tags(params["tags"]))
    _save_tags(resource, kind)
    return {}


@operation("UntagResource")
def untag_resource(ctx, params):
    """Remove tags by key."""
    resource, kind = _tagged_resource(ctx, params["resourceArn"])
    removed = set(params["tagKeys"])
    resource.tags = [tag for tag in resource.tags if tag["key"] not in removed]
    _save_tags(resource, kind)
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(ctx, params):
    """The tags of a cluster, task definition, task or service."""
    resource, _ = _tagged_resource(ctx, params["resourceArn"])
    return {"tags": list(resource.tags)}

