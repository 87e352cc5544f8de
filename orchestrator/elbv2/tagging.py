"""AddTags, DescribeTags and RemoveTags on load balancers, target groups, listeners and rules."""
from orchestrator.elbv2 import operations as ops
from orchestrator.elbv2.protocol import ElbError, error
from orchestrator.models import Listener

MAX_TAGS = 50  # per resource
MAX_ARNS = 20  # DescribeTags at once


def _resource(account, arn):
    """The tagged object an ARN names, or that kind's NotFound error."""
    arn = str(arn or "")
    if ":listener-rule/" in arn:
        from orchestrator.elbv2 import rules

        found = rules.get_rule(account, arn)
        if isinstance(found, Listener):
            raise error("OperationNotPermittedException",
                        "Fargate Lab keeps no tags on a listener's default rule: tag the listener itself")
        return found
    if ":listener/" in arn:
        return ops.get_listener(account, arn)
    if ":targetgroup/" in arn:
        return ops.get_target_group(account, arn)
    if ":loadbalancer/" in arn:
        return ops.get_load_balancer(account, arn)
    raise ElbError("ValidationError", f"'{arn[:256]}' is not a valid load balancer, target group, listener or rule ARN")


def _check_tag(tag):
    key, value = tag.get("Key"), tag.get("Value", "")
    if not isinstance(key, str) or not 1 <= len(key) <= 128:
        raise ElbError("ValidationError", "A tag key must be 1 to 128 characters")
    if key.lower().startswith("aws:"):
        raise ElbError("ValidationError", f"Tag key '{key}' uses the reserved prefix 'aws:'")
    if not isinstance(value, str) or len(value) > 256:
        raise ElbError("ValidationError", f"The value of tag '{key}' must be at most 256 characters")
    return key, value


def merged(current, new):
    """``current`` tags with ``new`` added (a key given again takes the new value); checked."""
    keys = [tag.get("Key") for tag in new]
    if len(keys) != len(set(keys)):
        raise error("DuplicateTagKeysException", "The request names a tag key more than once")
    tags = {tag["Key"]: tag.get("Value", "") for tag in current}
    for tag in new:
        key, value = _check_tag(tag)
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise error("TooManyTagsException", f"A resource can have at most {MAX_TAGS} tags")
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def add_tags(account, params, caller=""):
    found = [_resource(account, arn) for arn in ops._required(params, "ResourceArns")]
    new = ops._required(params, "Tags")
    updated = [(obj, merged(obj.tags or [], new)) for obj in found]  # all checked before any is written
    for obj, tags in updated:
        type(obj).objects.filter(pk=obj.pk).update(tags=tags)
    return {}


def remove_tags(account, params, caller=""):
    found = [_resource(account, arn) for arn in ops._required(params, "ResourceArns")]
    keys = set(ops._required(params, "TagKeys"))
    for obj in found:
        type(obj).objects.filter(pk=obj.pk).update(tags=[t for t in obj.tags or [] if t["Key"] not in keys])
    return {}


def describe_tags(account, params, caller=""):
    arns = ops._required(params, "ResourceArns")
    if len(arns) > MAX_ARNS:
        raise ElbError("ValidationError", f"DescribeTags takes at most {MAX_ARNS} resource ARNs")
    return {"TagDescriptions": [{"ResourceArn": arn, "Tags": list(_resource(account, arn).tags or [])} for arn in arns]}


OPERATIONS = {"AddTags": add_tags, "RemoveTags": remove_tags, "DescribeTags": describe_tags}
ops.OPERATIONS.update(OPERATIONS)
