"""Listener rules: CreateRule, DescribeRules, ModifyRule, DeleteRule and SetRulePriorities, and
how the data plane matches a request against a rule's conditions.

A listener tries its rules by priority, lowest first, and takes the actions of the first rule
whose conditions all match; a request no rule matches gets the listener's default actions, which
DescribeRules shows as the rule with priority ``default``. This is an Ingress: host and path
rules in front of several backends, each a Service (here, a target group).
"""
import ipaddress
import re

from django.db import IntegrityError, transaction

from orchestrator.elbv2 import operations as ops
from orchestrator.elbv2 import tagging
from orchestrator.elbv2.protocol import ElbError, error
from orchestrator.models import Listener, ListenerRule, region, rule_arn

MAX_PRIORITY = 50000
# ELBv2's quotas, which the lab enforces: rules per load balancer (the default rules not
# counted), condition values per condition and per rule, and a pattern's length.
RULES_PER_LOAD_BALANCER = ops.LIMITS["rules-per-application-load-balancer"]
VALUES_PER_CONDITION = 3
VALUES_PER_RULE = 5
MAX_PATTERN = 128
_RULE_ARN = re.compile(
    r"arn:aws:elasticloadbalancing:[^:]*:([0-9]{12}):listener-rule/app/([^/]+)/([0-9a-f]+)/([0-9a-f]+)/([0-9a-f]+)")
# The characters ELBv2 allows in each kind of pattern (``*`` and ``?`` are the wildcards).
_PATTERN_CHARS = {
    "path-pattern": re.compile(r"[A-Za-z0-9_\-.$/~\"'@:+&*?]+"),
    "host-header": re.compile(r"[A-Za-z0-9\-.*?]+"),
    "http-request-method": re.compile(r"[A-Z_\-]+"),
}
FIELDS = ("path-pattern", "host-header", "http-header", "http-request-method", "query-string", "source-ip")
# The conditions a rule may have at most one of (http-header and query-string may repeat).
ONCE = ("path-pattern", "host-header", "http-request-method", "source-ip")


# --- conditions: validated once, matched on every request ------------------------------------

def _values(condition, config_key, field):
    """A condition's values, from its ``<Field>Config`` or the older top-level ``Values``."""
    config = condition.get(config_key) or {}
    values = list(config.get("Values") or condition.get("Values") or [])
    if not values:
        raise ElbError("ValidationError", f"A '{field}' condition needs at least one value")
    return values


def check_conditions(conditions):
    """Validate a rule's conditions as ELBv2 does; returns them in a normal form (each with its
    ``Field``, the config key of its field, and the top-level ``Values`` where ELBv2 echoes them)."""
    if not conditions:
        raise ElbError("ValidationError", "A rule needs at least one condition")
    seen, total, cleaned = set(), 0, []
    for condition in conditions:
        field = condition.get("Field")
        if field not in FIELDS:
            raise ElbError("ValidationError", f"Condition field '{str(field)[:64]}' must be one of {', '.join(FIELDS)}")
        if condition.get("RegexValues"):
            raise error("InvalidConfigurationRequestException",
                        "Fargate Lab matches wildcard patterns ('*' and '?'), not RegexValues")
        if field in ONCE and field in seen:
            raise ElbError("ValidationError", f"A rule can have only one '{field}' condition")
        seen.add(field)
        cleaned.append(_check_condition(field, condition))
        count = len(_condition_values(cleaned[-1]))
        if count > VALUES_PER_CONDITION:
            raise ElbError("ValidationError", f"A condition can only have '{VALUES_PER_CONDITION}' values")
        total += count
    if total > VALUES_PER_RULE:
        raise ElbError("ValidationError", f"A rule can only have '{VALUES_PER_RULE}' condition values")
    return cleaned


def _check_pattern(field, value):
    if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
        raise ElbError("ValidationError", f"A '{field}' value must be 1 to {MAX_PATTERN} characters")
    chars = _PATTERN_CHARS.get(field)
    if chars is not None and not chars.fullmatch(value):
        raise ElbError("ValidationError", f"The '{field}' value '{value}' contains characters ELBv2 does not allow")


def _check_condition(field, condition):
    if field == "path-pattern":
        values = _values(condition, "PathPatternConfig", field)
        for value in values:
            _check_pattern(field, value)
        return {"Field": field, "Values": values, "PathPatternConfig": {"Values": values}}
    if field == "host-header":
        values = _values(condition, "HostHeaderConfig", field)
        for value in values:
            _check_pattern(field, value)
        return {"Field": field, "Values": values, "HostHeaderConfig": {"Values": values}}
    if field == "http-request-method":
        values = _values(condition, "HttpRequestMethodConfig", field)
        for value in values:
            _check_pattern(field, value)
        return {"Field": field, "HttpRequestMethodConfig": {"Values": values}}
    if field == "http-header":
        config = condition.get("HttpHeaderConfig") or {}
        name = config.get("HttpHeaderName") or ""
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,40}", name):
            raise ElbError("ValidationError", "An 'http-header' condition needs an HttpHeaderName of 1 to 40 token characters")
        values = _values(condition, "HttpHeaderConfig", field)
        for value in values:
            _check_pattern(field, value)
        return {"Field": field, "HttpHeaderConfig": {"HttpHeaderName": name, "Values": values}}
    if field == "query-string":
        pairs = (condition.get("QueryStringConfig") or {}).get("Values") or []
        if not pairs:
            raise ElbError("ValidationError", "A 'query-string' condition needs at least one key/value pair")
        for pair in pairs:
            if pair.get("Key") is not None:
                _check_pattern(field, pair["Key"])
            _check_pattern(field, pair.get("Value"))
        return {"Field": field, "QueryStringConfig": {"Values": [
            {k: pair[k] for k in ("Key", "Value") if pair.get(k) is not None} for pair in pairs]}}
    values = _values(condition, "SourceIpConfig", field)  # source-ip
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ElbError("ValidationError", f"'{str(value)[:64]}' is not a CIDR block") from None
    return {"Field": field, "SourceIpConfig": {"Values": values}}


def _condition_values(condition):
    config = next((v for k, v in condition.items() if k.endswith("Config")), {})
    return config.get("Values") or []


def _wildcard(pattern, flags=0):
    """A compiled regex for an ELBv2 pattern: ``*`` any run of characters, ``?`` exactly one."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), flags | re.S)


def compile_conditions(conditions):
    """The data plane's matcher for validated conditions: a function of (method, host, path,
    headers, query pairs, source address) → bool."""
    tests = []
    for condition in conditions:
        field = condition["Field"]
        values = _condition_values(condition)
        if field == "path-pattern":  # case-sensitive, on the path without the query string
            patterns = [_wildcard(v) for v in values]
            tests.append(lambda r, p=patterns: any(x.fullmatch(r["path"]) for x in p))
        elif field == "host-header":  # case-insensitive, without the port
            patterns = [_wildcard(v, re.I) for v in values]
            tests.append(lambda r, p=patterns: any(x.fullmatch(r["host"]) for x in p))
        elif field == "http-request-method":  # case-sensitive, exact
            tests.append(lambda r, v=tuple(values): r["method"] in v)
        elif field == "http-header":  # case-insensitive name and value
            name = condition["HttpHeaderConfig"]["HttpHeaderName"]
            patterns = [_wildcard(v, re.I) for v in values]
            tests.append(lambda r, n=name, p=patterns: any(
                x.fullmatch(value) for value in r["headers"].getall(n, []) for x in p))
        elif field == "query-string":  # any pair matching; case-insensitive
            pairs = [(_wildcard(v["Key"], re.I) if "Key" in v else None, _wildcard(v["Value"], re.I)) for v in values]
            tests.append(lambda r, p=pairs: any(
                (key is None or key.fullmatch(k)) and value.fullmatch(v) for k, v in r["query"] for key, value in p))
        else:  # source-ip
            networks = [ipaddress.ip_network(v, strict=False) for v in values]
            tests.append(lambda r, n=networks: _in_networks(r["source"], n))
    return lambda request: all(test(request) for test in tests)


def _in_networks(address, networks):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks if network.version == ip.version)


# --- the operations ----------------------------------------------------------------------------

def rule_shape(rule):
    return {"RuleArn": rule.arn, "Priority": str(rule.priority), "Conditions": rule.conditions,
            "Actions": rule.actions, "IsDefault": False}


def default_rule_shape(listener):
    return {"RuleArn": rule_arn(listener, listener.listener_id), "Priority": "default", "Conditions": [],
            "Actions": listener.default_actions, "IsDefault": True}


def get_rule(account, arn):
    """The account's rule with this ARN: a ListenerRule, or the Listener whose default rule it is."""
    match = _RULE_ARN.fullmatch(arn or "")
    if not match:
        raise ElbError("ValidationError", f"'{str(arn)[:256]}' is not a valid listener rule ARN")
    _, lb_name, lb_id, listener_id, rule_id = match.groups()
    listener = Listener.objects.filter(
        load_balancer__account=account, load_balancer__region=region(), load_balancer__lb_id=lb_id, load_balancer__name=lb_name,
        listener_id=listener_id).select_related("load_balancer__account").first()
    if listener is not None:
        if rule_id == listener.listener_id:
            return listener
        rule = listener.rules.filter(rule_id=rule_id).first()
        if rule is not None:
            rule.listener = listener
            return rule
    raise error("RuleNotFoundException", f"One or more rules not found: '{arn}'")


def associate(listener):
    """Set the listener's target groups to those its default actions and rules forward to,
    refusing a target group that another load balancer uses (as CreateListener does)."""
    arns = set(_forwarded(listener.default_actions))
    for actions in listener.rules.values_list("actions", flat=True):
        arns.update(_forwarded(actions))
    groups = [ops.get_target_group(listener.load_balancer.account, arn) for arn in sorted(arns)]
    _check_association(listener.load_balancer, groups)
    listener.target_groups.set(groups)


def _forwarded(actions):
    for action in actions:
        if action.get("Type") == "forward":
            if action.get("TargetGroupArn"):
                yield action["TargetGroupArn"]
            for target in (action.get("ForwardConfig") or {}).get("TargetGroups") or []:
                yield target.get("TargetGroupArn")


def _check_association(lb, groups):
    for tg in groups:
        other = tg.listeners.exclude(load_balancer=lb).select_related("load_balancer").first()
        if other is not None:
            raise error("TargetGroupAssociationLimitException",
                        f"The target group '{tg.name}' is already associated with load balancer '{other.load_balancer.name}'")


def _check_priority(value):
    if not isinstance(value, int) or not 1 <= value <= MAX_PRIORITY:
        raise ElbError("ValidationError", f"Priority must be between 1 and {MAX_PRIORITY}")
    return value


def _no_transforms(params):
    if params.get("Transforms"):
        raise error("InvalidConfigurationRequestException",
                    "Fargate Lab does not rewrite requests: rule Transforms (host-header-rewrite, url-rewrite) are not supported")


def _publish(listener, action, arn, message, caller):
    ops._changed("listener", listener, action, arn, message, caller)


def create_rule(account, params, caller=""):
    listener = ops.get_listener(account, ops._required(params, "ListenerArn"))
    priority = _check_priority(ops._required(params, "Priority"))
    conditions = check_conditions(ops._required(params, "Conditions"))
    _no_transforms(params)
    actions, groups = ops._check_actions(account, ops._required(params, "Actions"))
    tags = tagging.merged([], params.get("Tags") or [])
    _check_association(listener.load_balancer, groups)
    lb = listener.load_balancer
    if ListenerRule.objects.filter(listener__load_balancer=lb).count() >= RULES_PER_LOAD_BALANCER:
        raise error("TooManyRulesException", f"A load balancer can have at most {RULES_PER_LOAD_BALANCER} rules")
    if listener.rules.filter(priority=priority).exists():
        raise error("PriorityInUseException", f"Priority '{priority}' is currently in use")
    try:
        with transaction.atomic():
            rule = ListenerRule.objects.create(listener=listener, priority=priority, conditions=conditions,
                                               actions=actions, tags=tags)
            associate(listener)
    except IntegrityError:
        raise error("PriorityInUseException", f"Priority '{priority}' is currently in use") from None
    rule.listener = listener
    _publish(listener, "CreateRule", rule.arn, f"priority {priority}: {describe(conditions)}", caller)
    return {"Rules": [rule_shape(rule)]}


def describe(conditions):
    """A rule's conditions in a line, for the activity feed and the dashboard."""
    parts = []
    for condition in conditions:
        field = condition["Field"]
        if field == "http-header":
            parts.append(f"header {condition['HttpHeaderConfig']['HttpHeaderName']} is "
                         + " or ".join(condition["HttpHeaderConfig"]["Values"]))
        elif field == "query-string":
            parts.append("query " + " or ".join(
                f"{v.get('Key', '*')}={v['Value']}" for v in condition["QueryStringConfig"]["Values"]))
        else:
            parts.append(f"{field} is " + " or ".join(_condition_values(condition)))
    return " and ".join(parts)


def describe_rules(account, params, caller=""):
    if params.get("ListenerArn"):
        listener = ops.get_listener(account, params["ListenerArn"])
        rows = [rule_shape(_with(rule, listener)) for rule in listener.rules.all()] + [default_rule_shape(listener)]
    elif params.get("RuleArns"):
        rows = []
        for arn in params["RuleArns"]:
            found = get_rule(account, arn)
            rows.append(default_rule_shape(found) if isinstance(found, Listener) else rule_shape(found))
    else:
        raise ElbError("ValidationError", "You must specify either listener rule ARNs or a listener ARN")
    chunk, marker = ops._page(rows, params)
    return {"Rules": chunk, "NextMarker": marker}


def _with(rule, listener):
    rule.listener = listener
    return rule


def modify_rule(account, params, caller=""):
    found = get_rule(account, ops._required(params, "RuleArn"))
    _no_transforms(params)
    if isinstance(found, Listener):
        if params.get("Conditions"):
            raise error("OperationNotPermittedException", "The default rule has no conditions: they cannot be modified")
        if params.get("Actions"):
            actions, _ = ops._check_actions(account, params["Actions"])
            with transaction.atomic():
                found.default_actions = actions
                found.save(update_fields=["default_actions"])
                associate(found)
            _publish(found, "ModifyRule", rule_arn(found, found.listener_id), "default actions", caller)
        return {"Rules": [default_rule_shape(found)]}
    fields = []
    if params.get("Conditions"):
        found.conditions = check_conditions(params["Conditions"])
        fields.append("conditions")
    if params.get("Actions"):
        found.actions, _ = ops._check_actions(account, params["Actions"])
        fields.append("actions")
    if fields:
        with transaction.atomic():
            found.save(update_fields=fields)
            associate(found.listener)
        _publish(found.listener, "ModifyRule", found.arn, f"priority {found.priority}: {describe(found.conditions)}", caller)
    return {"Rules": [rule_shape(found)]}


def delete_rule(account, params, caller=""):
    found = get_rule(account, ops._required(params, "RuleArn"))
    if isinstance(found, Listener):
        raise error("OperationNotPermittedException", f"Default rule '{params['RuleArn']}' cannot be deleted")
    listener, arn = found.listener, found.arn
    with transaction.atomic():
        found.delete()
        associate(listener)
    _publish(listener, "DeleteRule", arn, "", caller)
    return {}


def set_rule_priorities(account, params, caller=""):
    wanted = ops._required(params, "RulePriorities")
    rules, priorities = [], {}
    for entry in wanted:
        found = get_rule(account, ops._required(entry, "RuleArn"))
        if isinstance(found, Listener):
            raise error("OperationNotPermittedException", "The default rule's priority cannot be changed")
        priority = _check_priority(ops._required(entry, "Priority"))
        key = (found.listener_id, priority)
        if key in priorities or any(r.pk == found.pk for r in rules):
            raise error("PriorityInUseException", f"Priority '{priority}' is given twice")
        priorities[key] = found
        rules.append(found)
    moving = {r.pk for r in rules}
    for (listener_id, priority), rule in priorities.items():
        if ListenerRule.objects.filter(listener_id=listener_id, priority=priority).exclude(pk__in=moving).exists():
            raise error("PriorityInUseException", f"Priority '{priority}' is currently in use")
    with transaction.atomic():
        # Two steps, so that swapping two rules' priorities never meets the unique constraint.
        for rule in rules:
            ListenerRule.objects.filter(pk=rule.pk).update(priority=MAX_PRIORITY + rule.pk)
        for (_, priority), rule in priorities.items():
            ListenerRule.objects.filter(pk=rule.pk).update(priority=priority)
            rule.priority = priority
    for rule in rules:
        _publish(rule.listener, "SetRulePriorities", rule.arn, f"priority {rule.priority}", caller)
    return {"Rules": [rule_shape(rule) for rule in rules]}


OPERATIONS = {
    "CreateRule": create_rule,
    "DescribeRules": describe_rules,
    "ModifyRule": modify_rule,
    "DeleteRule": delete_rule,
    "SetRulePriorities": set_rule_priorities,
}
ops.OPERATIONS.update(OPERATIONS)
