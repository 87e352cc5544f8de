"""Attributes: PutAttributes, ListAttributes, DeleteAttributes — answered as ECS answers them
for a Fargate cluster.

Custom attributes belong to container instances (the only target type), and Fargate's container
instances are Fargate's own: a Fargate cluster has none of the caller's, so ListAttributes is
empty and putting or deleting an attribute finds no target. The lab's fleet is shared by every
account; letting one account label it would steer another's placement.
"""
from orchestrator.frontend import EcsError
from orchestrator.frontend.operations import _get_cluster, _page, _paged_response, operation

NO_TARGET = (
    "Fargate Lab runs the Fargate launch type: container instances are Fargate's, so {target} is not a "
    "container instance of yours, and none takes attributes."
)
MAX_ATTRIBUTES = 10


def _check_attributes(attributes):
    """Refuse what ECS refuses before it looks for the targets (1 to 10 attributes, each with a target)."""
    if not 1 <= len(attributes) <= MAX_ATTRIBUTES:
        raise EcsError("InvalidParameterException", f"attributes must list between 1 and {MAX_ATTRIBUTES} attributes.")
    for attribute in attributes:
        if not attribute.get("targetId"):
            raise EcsError("InvalidParameterException",
                           f"Attribute {attribute['name'][:128]} needs a targetId: the container instance it is for.")


def _no_target(attributes):
    """TargetNotFoundException for the first attribute's target."""
    raise EcsError("TargetNotFoundException", NO_TARGET.format(target=attributes[0]["targetId"][:256]))


@operation("PutAttributes")
def put_attributes(ctx, params):
    """Refused with TargetNotFoundException: no container instance of a Fargate cluster is the caller's."""
    _get_cluster(ctx, params.get("cluster"))
    _check_attributes(params["attributes"])
    _no_target(params["attributes"])


@operation("DeleteAttributes")
def delete_attributes(ctx, params):
    """Refused with TargetNotFoundException, as PutAttributes."""
    _get_cluster(ctx, params.get("cluster"))
    _check_attributes(params["attributes"])
    _no_target(params["attributes"])


@operation("ListAttributes")
def list_attributes(ctx, params):
    """The custom attributes of the cluster's container instances: none on a Fargate cluster."""
    _get_cluster(ctx, params.get("cluster"))
    if params.get("attributeValue") and not params.get("attributeName"):
        raise EcsError("InvalidParameterException", "attributeValue can only be given with attributeName.")
    items, token = _page([], params, lambda attribute: attribute)
    return _paged_response("attributes", items, token)
