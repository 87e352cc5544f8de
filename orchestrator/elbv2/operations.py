"""The ELBv2 operations the article's step 4 needs, on the state database.

Each operation takes the caller's account and the parsed parameters and returns the result
dict that ``protocol.render_response`` writes as XML; errors are ``ElbError``. The data plane
(``load_balancer.DataPlane``) picks every change up from the database.
"""
import ipaddress
import re
import socket
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator import activity, bus, network
from orchestrator.elbv2.protocol import ElbError, error
from orchestrator.frontend import wire
from orchestrator.models import ContainerInstance, Listener, LoadBalancer, Target, TargetGroup, Task, region

VPC_ID = "vpc-fargatelab"
HOSTED_ZONE_ID = "Z35SXDOTRQ7X7K"
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
_ARN_RE = {
    "loadbalancer": re.compile(r"arn:aws:elasticloadbalancing:[^:]*:([0-9]{12}):loadbalancer/app/([^/]+)/([0-9a-f]+)"),
    "targetgroup": re.compile(r"arn:aws:elasticloadbalancing:[^:]*:([0-9]{12}):targetgroup/([^/]+)/([0-9a-f]+)"),
    "listener": re.compile(r"arn:aws:elasticloadbalancing:[^:]*:([0-9]{12}):listener/app/([^/]+)/([0-9a-f]+)/([0-9a-f]+)"),
}
# The health check ranges ELBv2 enforces.
HEALTH_LIMITS = {
    "HealthCheckIntervalSeconds": (5, 300),
    "HealthCheckTimeoutSeconds": (2, 120),
    "HealthyThresholdCount": (2, 10),
    "UnhealthyThresholdCount": (2, 10),
}
TARGET_HEALTH_TEXT = {
    "Elb.RegistrationInProgress": "Target registration is in progress",
    "Elb.InitialHealthChecking": "Initial health checks in progress",
    "Target.DeregistrationInProgress": "Target deregistration is in progress",
    "Target.NotInUse": "Target group is not configured to receive traffic from the load balancer",
    "Target.NotRegistered": "Target is not registered to the target group",
}


def listen_address():
    """The host address every listener binds (the lab's HOST unless the lab says otherwise)."""
    return network.listen_address()


def _required(params, name):
    if params.get(name) in (None, "", []):
        raise ElbError("ValidationError", f"1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null")
    return params[name]


def _check_name(name, what):
    if not _NAME_RE.fullmatch(name) or name.lower().startswith("internal-"):
        raise ElbError(
            "ValidationError",
            f"{what} name '{name[:64]}' can have a maximum of 32 characters, can contain only "
            "alphanumeric characters or hyphens, and must not begin or end with a hyphen",
        )


def _match_arn(kind, arn):
    match = _ARN_RE[kind].fullmatch(arn or "")
    if not match:
        raise ElbError("ValidationError", f"'{str(arn)[:256]}' is not a valid {kind.replace('group', ' group')} ARN")
    return match


def get_load_balancer(account, arn):
    """The account's load balancer with this ARN, or LoadBalancerNotFound."""
    match = _match_arn("loadbalancer", arn)
    lb = LoadBalancer.objects.filter(account=account, region=region(), lb_id=match.group(3), name=match.group(2)).first()
    if lb is None:
        raise error("LoadBalancerNotFoundException", f"Load balancer '{arn}' not found")
    return lb


def get_target_group(account, arn):
    """The account's target group with this ARN, or TargetGroupNotFound."""
    match = _match_arn("targetgroup", arn)
    tg = TargetGroup.objects.filter(account=account, region=region(), tg_id=match.group(3), name=match.group(2)).first()
    if tg is None:
        raise error("TargetGroupNotFoundException", f"Target groups '{arn}' not found")
    return tg


def get_listener(account, arn):
    """The account's listener with this ARN, or ListenerNotFound."""
    match = _match_arn("listener", arn)
    listener = Listener.objects.select_related("load_balancer__account").filter(
        load_balancer__account=account, load_balancer__region=region(), listener_id=match.group(4)
    ).first()
    if listener is None:
        raise error("ListenerNotFoundException", f"Listener '{arn}' not found")
    return listener


def _page(rows, params):
    """One page of ``rows`` by Marker/PageSize; returns (rows, next_marker)."""
    size = params.get("PageSize", 400)
    if not 1 <= size <= 400:
        raise ElbError("ValidationError", "PageSize must be between 1 and 400")
    start = wire.ascii_int(params.get("Marker") or "0")
    if start is None:
        raise ElbError("ValidationError", "Invalid Marker")
    rows = list(rows)
    chunk = rows[start:start + size]
    return chunk, (str(start + size) if start + size < len(rows) else None)


def _changed(kind, obj, action, arn, message="", caller=""):
    """Publish a change and record it as an activity of the load balancer component."""
    bus.publish(kind, obj.pk)
    activity.record("load_balancer", action, arn, message, caller=caller)


# --- shapes -------------------------------------------------------------------------------


def lb_shape(lb):
    """A LoadBalancer as DescribeLoadBalancers returns it."""
    state = {"Code": lb.state}
    if lb.state_reason:
        state["Reason"] = lb.state_reason
    return {
        "LoadBalancerArn": lb.arn,
        "DNSName": lb.dns_name,
        "CanonicalHostedZoneId": HOSTED_ZONE_ID,
        "CreatedTime": lb.created_at,
        "LoadBalancerName": lb.name,
        "Scheme": lb.scheme,
        "VpcId": VPC_ID,
        "State": state,
        "Type": lb.type,
        "AvailabilityZones": [
            {"ZoneName": f"{lb.region}{'abcdef'[i % 6]}", "SubnetId": subnet}
            for i, subnet in enumerate(lb.subnets)
        ],
        "SecurityGroups": lb.security_groups,
        "IpAddressType": lb.ip_address_type,
    }


def tg_shape(tg):
    """A TargetGroup as DescribeTargetGroups returns it."""
    lb_arns = sorted({listener.load_balancer.arn for listener in tg.listeners.select_related("load_balancer__account")})
    return {
        "TargetGroupArn": tg.arn,
        "TargetGroupName": tg.name,
        "Protocol": tg.protocol,
        "Port": tg.port,
        "VpcId": tg.vpc_id or VPC_ID,
        "HealthCheckProtocol": tg.health_check_protocol,
        "HealthCheckPort": tg.health_check_port,
        "HealthCheckEnabled": tg.health_check_enabled,
        "HealthCheckIntervalSeconds": int(round(tg.health_check_interval)),
        "HealthCheckTimeoutSeconds": int(round(tg.health_check_timeout)),
        "HealthyThresholdCount": tg.healthy_threshold,
        "UnhealthyThresholdCount": tg.unhealthy_threshold,
        "HealthCheckPath": tg.health_check_path,
        "Matcher": {"HttpCode": tg.matcher},
        "LoadBalancerArns": lb_arns,
        "TargetType": tg.target_type,
        "ProtocolVersion": tg.protocol_version,
        "IpAddressType": "ipv4",
    }


def listener_shape(listener):
    """A Listener as DescribeListeners returns it."""
    return {
        "ListenerArn": listener.arn,
        "LoadBalancerArn": listener.load_balancer.arn,
        "Port": listener.port,
        "Protocol": listener.protocol,
        "DefaultActions": listener.default_actions,
    }


def target_health_shape(target, in_use):
    """One TargetHealthDescription of DescribeTargetHealth."""
    health = {"State": target.state}
    if target.state != Target.DRAINING and not in_use:
        health = {"State": "unused", "Reason": "Target.NotInUse"}
    elif target.reason and target.state != Target.HEALTHY:
        health["Reason"] = target.reason
    if "Reason" in health:
        health["Description"] = target.description or TARGET_HEALTH_TEXT.get(health["Reason"], "")
    tg = target.target_group
    hc_port = str(target.port) if tg.health_check_port == "traffic-port" else tg.health_check_port
    shape = {"Id": target.target_id, "Port": target.port}
    if target.availability_zone:
        shape["AvailabilityZone"] = target.availability_zone
    return {"Target": shape, "HealthCheckPort": hc_port, "TargetHealth": health}


# --- load balancers -----------------------------------------------------------------------


def create_load_balancer(account, params, caller=""):
    name = _required(params, "Name")
    _check_name(name, "Load balancer")
    lb_type = params.get("Type", "application")
    if lb_type != "application":
        raise ElbError("ValidationError", f"Fargate Lab runs application load balancers only, not '{lb_type}'")
    scheme = params.get("Scheme", "internet-facing")
    if scheme not in ("internet-facing", "internal"):
        raise error("InvalidSchemeException", f"Scheme '{scheme}' is not valid")
    if params.get("IpAddressType", "ipv4") != "ipv4":
        # Task networks are IPv4 only: a dual-stack load balancer would promise what none has.
        raise error("InvalidConfigurationRequestException",
                    f"Fargate Lab load balancers are IPv4 only, not '{params['IpAddressType']}'")
    subnets = list(params.get("Subnets") or []) + [m.get("SubnetId", "") for m in params.get("SubnetMappings") or []]
    existing = LoadBalancer.objects.filter(account=account, region=region(), name=name).first()
    if existing is None and LoadBalancer.objects.filter(account=account, region=region()).count() >= LIMITS["application-load-balancers"]:
        raise error("TooManyLoadBalancersException",
                    f"An account can have at most {LIMITS['application-load-balancers']} application load balancers")
    if existing is not None:
        # CreateLoadBalancer is idempotent: the same name and settings return the same LB.
        if existing.scheme == scheme and existing.type == lb_type:
            return {"LoadBalancers": [lb_shape(existing)]}
        raise error("DuplicateLoadBalancerNameException", "A load balancer with the same name exists")
    try:
        with transaction.atomic():
            lb = LoadBalancer.objects.create(
                account=account, name=name, type=lb_type, scheme=scheme, subnets=subnets,
                security_groups=list(params.get("SecurityGroups") or []),
                ip_address_type=params.get("IpAddressType", "ipv4"), tags=params.get("Tags") or [],
            )
    except IntegrityError:
        raise error("DuplicateLoadBalancerNameException", "A load balancer with the same name exists") from None
    _changed("load_balancer", lb, "CreateLoadBalancer", lb.arn, f"DNS name {lb.dns_name}", caller)
    return {"LoadBalancers": [lb_shape(lb)]}


def describe_load_balancers(account, params, caller=""):
    rows = LoadBalancer.objects.filter(account=account, region=region()).select_related("account")
    arns, names = params.get("LoadBalancerArns"), params.get("Names")
    if arns:
        found = [get_load_balancer(account, arn) for arn in arns]
        rows = [lb for lb in rows if lb in found]
    elif names:
        rows = [lb for lb in rows if lb.name in names]
        missing = set(names) - {lb.name for lb in rows}
        if missing:
            raise error("LoadBalancerNotFoundException", f"Load balancers '{sorted(missing)}' not found")
    chunk, marker = _page(rows, params)
    return {"LoadBalancers": [lb_shape(lb) for lb in chunk], "NextMarker": marker}


def delete_load_balancer(account, params, caller=""):
    arn = _required(params, "LoadBalancerArn")
    match = _match_arn("loadbalancer", arn)
    lb = LoadBalancer.objects.filter(account=account, region=region(), lb_id=match.group(3)).first()
    if lb is not None and lb.attributes.get("deletion_protection.enabled") == "true":
        raise error("OperationNotPermittedException",
                    f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled")
    if lb is not None:  # deleting a load balancer that is gone already succeeds, as on AWS
        pk = lb.pk
        lb.delete()
        lb.pk = pk
        _changed("load_balancer", lb, "DeleteLoadBalancer", arn, caller=caller)
    return {}


def set_subnets(account, params, caller=""):
    """The subnets a load balancer names (shown as its availability zones; the lab has one network per account)."""
    lb = get_load_balancer(account, _required(params, "LoadBalancerArn"))
    if params.get("IpAddressType", "ipv4") != "ipv4":
        raise error("InvalidConfigurationRequestException",
                    f"Fargate Lab load balancers are IPv4 only, not '{params['IpAddressType']}'")
    subnets = list(params.get("Subnets") or []) + [m.get("SubnetId", "") for m in params.get("SubnetMappings") or []]
    if not subnets:
        raise ElbError("ValidationError", "Specify at least one subnet (Subnets or SubnetMappings)")
    LoadBalancer.objects.filter(pk=lb.pk).update(subnets=subnets)
    lb.subnets = subnets
    _changed("load_balancer", lb, "SetSubnets", lb.arn, ", ".join(subnets), caller)
    return {"AvailabilityZones": lb_shape(lb)["AvailabilityZones"], "IpAddressType": lb.ip_address_type}


def set_security_groups(account, params, caller=""):
    """The security groups a load balancer names. The lab isolates accounts with its own host
    firewall and per-account networks; security group rules are not evaluated (README)."""
    lb = get_load_balancer(account, _required(params, "LoadBalancerArn"))
    if params.get("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic") not in (None, "off"):
        raise error("InvalidConfigurationRequestException", "Fargate Lab has no PrivateLink traffic to enforce rules on")
    groups = list(params.get("SecurityGroups") or [])
    LoadBalancer.objects.filter(pk=lb.pk).update(security_groups=groups)
    _changed("load_balancer", lb, "SetSecurityGroups", lb.arn, ", ".join(groups), caller)
    return {"SecurityGroupIds": groups}


def set_ip_address_type(account, params, caller=""):
    lb = get_load_balancer(account, _required(params, "LoadBalancerArn"))
    wanted = _required(params, "IpAddressType")
    if wanted != "ipv4":
        raise error("InvalidConfigurationRequestException", f"Fargate Lab load balancers are IPv4 only, not '{wanted}'")
    return {"IpAddressType": lb.ip_address_type}


# The quotas DescribeAccountLimits reports: each is enforced by the operation that would exceed it.
LIMITS = {
    "application-load-balancers": 50,
    "listeners-per-application-load-balancer": 50,
    "rules-per-application-load-balancer": 100,
}


def describe_account_limits(account, params, caller=""):
    rows = [{"Name": name, "Max": str(value)} for name, value in LIMITS.items()]
    chunk, marker = _page(rows, params)
    return {"Limits": chunk, "NextMarker": marker}


# --- target groups ------------------------------------------------------------------------


def _health_settings(params, defaults):
    """The health check fields of Create/ModifyTargetGroup, validated against ELBv2's ranges."""
    fields = {}
    for name, (low, high) in HEALTH_LIMITS.items():
        value = params.get(name)
        if value is not None and not low <= value <= high:
            raise ElbError("ValidationError", f"{name} must be between {low} and {high}, not {value}")
    mapping = {
        "HealthCheckIntervalSeconds": "health_check_interval",
        "HealthCheckTimeoutSeconds": "health_check_timeout",
        "HealthyThresholdCount": "healthy_threshold",
        "UnhealthyThresholdCount": "unhealthy_threshold",
        "HealthCheckPath": "health_check_path",
        "HealthCheckPort": "health_check_port",
        "HealthCheckProtocol": "health_check_protocol",
        "HealthCheckEnabled": "health_check_enabled",
    }
    for name, field in mapping.items():
        if params.get(name) is not None:
            fields[field] = params[name]
    if "health_check_path" in fields and not str(fields["health_check_path"]).startswith("/"):
        raise ElbError("ValidationError", "Health check path must begin with a '/' character")
    if fields.get("health_check_protocol", "HTTP") != "HTTP":
        raise error("UnsupportedProtocolException", "Fargate Lab health checks speak HTTP only")
    port = str(fields.get("health_check_port", "traffic-port"))
    if port != "traffic-port" and not 1 <= (wire.ascii_int(port, max_digits=5) or 0) <= 65535:
        raise ElbError("ValidationError", "Health check port must be 'traffic-port' or between 1 and 65535")
    if "Matcher" in params:
        code = (params["Matcher"] or {}).get("HttpCode", "")
        if not re.fullmatch(r"[0-9]{3}(-[0-9]{3})?(,[0-9]{3}(-[0-9]{3})?)*", code or ""):
            raise ElbError("ValidationError", f"Matcher HttpCode '{code[:64]}' is not valid (e.g. 200, 200-299, 200,202)")
        fields["matcher"] = code
    interval = fields.get("health_check_interval", defaults.get("health_check_interval", 30))
    timeout = fields.get("health_check_timeout", defaults.get("health_check_timeout", 5))
    if "health_check_timeout" not in fields and timeout >= interval:
        # Only the interval was given (e.g. 5 s): shorten the default timeout to fit under it.
        timeout = fields["health_check_timeout"] = max(2, interval - 1)
    if timeout >= interval:
        raise ElbError("ValidationError", "Health check timeout must be smaller than the interval")
    return fields


def create_target_group(account, params, caller=""):
    name = _required(params, "Name")
    _check_name(name, "Target group")
    target_type = params.get("TargetType", "instance")
    if target_type not in ("instance", "ip"):
        raise ElbError("ValidationError", f"Fargate Lab supports target types 'instance' and 'ip', not '{target_type}'")
    protocol = _required(params, "Protocol")
    if protocol != "HTTP":
        raise error("UnsupportedProtocolException", f"Protocol '{protocol}' is not supported: Fargate Lab serves HTTP")
    port = _required(params, "Port")
    if not 1 <= port <= 65535:
        raise ElbError("ValidationError", "Port must be between 1 and 65535")
    fields = _health_settings(params, {})
    settings_now = dict(
        protocol=protocol, port=port, target_type=target_type, vpc_id=params.get("VpcId", ""),
        protocol_version=params.get("ProtocolVersion", "HTTP1"), **fields,
    )
    existing = TargetGroup.objects.filter(account=account, region=region(), name=name).first()
    if existing is not None:
        if all(getattr(existing, k) == v for k, v in settings_now.items()):
            return {"TargetGroups": [tg_shape(existing)]}
        raise error("DuplicateTargetGroupNameException", "A target group with the same name exists, but with different settings")
    delay = settings.FARGATE_LAB.get("ELB_DEREGISTRATION_DELAY", 300)
    try:
        with transaction.atomic():
            tg = TargetGroup.objects.create(
                account=account, name=name, tags=params.get("Tags") or [], deregistration_delay=delay, **settings_now
            )
    except IntegrityError:
        raise error("DuplicateTargetGroupNameException", "A target group with the same name exists") from None
    _changed("target_group", tg, "CreateTargetGroup", tg.arn, caller=caller)
    return {"TargetGroups": [tg_shape(tg)]}


def describe_target_groups(account, params, caller=""):
    rows = TargetGroup.objects.filter(account=account, region=region()).select_related("account")
    if params.get("LoadBalancerArn"):
        lb = get_load_balancer(account, params["LoadBalancerArn"])
        rows = rows.filter(listeners__load_balancer=lb).distinct()
    if params.get("TargetGroupArns"):
        found = [get_target_group(account, arn) for arn in params["TargetGroupArns"]]
        rows = [tg for tg in rows if tg in found]
    elif params.get("Names"):
        rows = [tg for tg in rows if tg.name in params["Names"]]
        missing = set(params["Names"]) - {tg.name for tg in rows}
        if missing:
            raise error("TargetGroupNotFoundException", f"One or more target groups not found: {sorted(missing)}")
    chunk, marker = _page(rows, params)
    return {"TargetGroups": [tg_shape(tg) for tg in chunk], "NextMarker": marker}


def delete_target_group(account, params, caller=""):
    arn = _required(params, "TargetGroupArn")
    match = _match_arn("targetgroup", arn)
    tg = TargetGroup.objects.filter(account=account, region=region(), tg_id=match.group(3)).first()
    if tg is None:
        return {}
    if tg.listeners.exists():
        raise error("ResourceInUseException", f"Target group '{arn}' is currently in use by a listener or a rule")
    pk = tg.pk
    tg.delete()
    tg.pk = pk
    _changed("target_group", tg, "DeleteTargetGroup", arn, caller=caller)
    return {}


def modify_target_group(account, params, caller=""):
    tg = get_target_group(account, _required(params, "TargetGroupArn"))
    fields = _health_settings(params, {"health_check_interval": tg.health_check_interval,
                                       "health_check_timeout": tg.health_check_timeout})
    for field, value in fields.items():
        setattr(tg, field, value)
    tg.save(update_fields=list(fields) or None)
    _changed("target_group", tg, "ModifyTargetGroup", tg.arn, caller=caller)
    return {"TargetGroups": [tg_shape(tg)]}


def _tg_attributes(tg):
    return [
        {"Key": "deregistration_delay.timeout_seconds", "Value": str(int(tg.deregistration_delay))},
        {"Key": "load_balancing.algorithm.type", "Value": "round_robin"},
        {"Key": "stickiness.enabled", "Value": "false"},
    ]


def describe_target_group_attributes(account, params, caller=""):
    tg = get_target_group(account, _required(params, "TargetGroupArn"))
    return {"Attributes": _tg_attributes(tg)}


def modify_target_group_attributes(account, params, caller=""):
    tg = get_target_group(account, _required(params, "TargetGroupArn"))
    for attribute in _required(params, "Attributes"):
        key, value = attribute.get("Key"), attribute.get("Value", "")
        if key == "deregistration_delay.timeout_seconds":
            seconds = wire.ascii_int(value, max_digits=4)
            if seconds is None or seconds > 3600:
                raise ElbError("ValidationError", "deregistration_delay.timeout_seconds must be between 0 and 3600")
            tg.deregistration_delay = seconds
        elif (key, value) not in (("load_balancing.algorithm.type", "round_robin"), ("stickiness.enabled", "false")):
            raise error("InvalidConfigurationRequestException", f"Fargate Lab does not support attribute '{key}' = '{value}'")
    tg.save(update_fields=["deregistration_delay"])
    _changed("target_group", tg, "ModifyTargetGroupAttributes", tg.arn, caller=caller)
    return {"Attributes": _tg_attributes(tg)}


# --- listeners ----------------------------------------------------------------------------


def _check_actions(account, actions):
    """Validate DefaultActions; returns them cleaned and the target groups they forward to."""
    cleaned, groups = [], []
    for order, action in enumerate(actions, start=1):
        kind = action.get("Type")
        if kind == "forward":
            arns = [action["TargetGroupArn"]] if action.get("TargetGroupArn") else []
            arns += [t.get("TargetGroupArn") for t in (action.get("ForwardConfig") or {}).get("TargetGroups") or []]
            if not arns:
                raise error("InvalidLoadBalancerActionException", "A forward action needs a target group")
            groups += [get_target_group(account, arn) for arn in arns]
            if not action.get("TargetGroupArn") and len(arns) == 1:
                action = {**action, "TargetGroupArn": arns[0]}
        elif kind == "fixed-response":
            config = action.get("FixedResponseConfig") or {}
            if not re.fullmatch(r"[245][0-9][0-9]", config.get("StatusCode", "")):
                raise ElbError("ValidationError", "FixedResponseConfig.StatusCode must be 2XX, 4XX or 5XX")
        else:
            raise error("InvalidLoadBalancerActionException", f"Fargate Lab supports forward and fixed-response actions, not '{kind}'")
        cleaned.append({**action, "Order": action.get("Order", order)})
    return cleaned, groups


def port_bindable(port):
    """None if the listen address's ``port`` can be bound now, else why not."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((listen_address(), port))
        return None
    except OSError as exc:
        return f"port {port} on {listen_address()} cannot be bound: {exc.strerror or exc}"
    finally:
        probe.close()


def create_listener(account, params, caller=""):
    lb = get_load_balancer(account, _required(params, "LoadBalancerArn"))
    port = _required(params, "Port")
    if not 1 <= port <= 65535:
        raise ElbError("ValidationError", "Port must be between 1 and 65535")
    protocol = params.get("Protocol", "HTTP")
    if protocol != "HTTP":
        raise error("UnsupportedProtocolException", f"Protocol '{protocol}' is not supported: Fargate Lab listeners speak HTTP")
    actions, groups = _check_actions(account, _required(params, "DefaultActions"))
    for tg in groups:
        other = tg.listeners.exclude(load_balancer=lb).select_related("load_balancer").first()
        if other is not None:
            raise error(
                "TargetGroupAssociationLimitException",
                f"The target group '{tg.name}' is already associated with load balancer '{other.load_balancer.name}'",
            )
    same_port = Listener.objects.filter(port=port).select_related("load_balancer").first()
    if same_port is not None:
        if same_port.load_balancer_id == lb.pk:
            if same_port.default_actions == actions:
                return {"Listeners": [listener_shape(same_port)]}
            raise error("DuplicateListenerException", f"A listener already exists on port {port}")
        raise error(
            "InvalidConfigurationRequestException",
            f"Port {port} is taken by load balancer '{same_port.load_balancer.name}': every load balancer of "
            f"the lab listens on {listen_address()}, so each listener needs a port of its own",
        )
    if lb.listeners.count() >= LIMITS["listeners-per-application-load-balancer"]:
        raise error("TooManyListenersException",
                    f"A load balancer can have at most {LIMITS['listeners-per-application-load-balancer']} listeners")
    reason = port_bindable(port)
    if reason:
        raise error("InvalidConfigurationRequestException", reason[0].upper() + reason[1:])
    with transaction.atomic():
        listener = Listener.objects.create(load_balancer=lb, port=port, protocol=protocol, default_actions=actions)
        listener.target_groups.set(groups)
    _changed("listener", listener, "CreateListener", listener.arn, f"http://{lb.dns_name}:{port}/", caller)
    return {"Listeners": [listener_shape(listener)]}


def describe_listeners(account, params, caller=""):
    if params.get("LoadBalancerArn"):
        lb = get_load_balancer(account, params["LoadBalancerArn"])
        rows = list(lb.listeners.select_related("load_balancer__account"))
    elif params.get("ListenerArns"):
        rows = [get_listener(account, arn) for arn in params["ListenerArns"]]
    else:
        raise ElbError("ValidationError", "You must specify either listener ARNs or a load balancer ARN")
    chunk, marker = _page(rows, params)
    return {"Listeners": [listener_shape(listener) for listener in chunk], "NextMarker": marker}


def modify_listener(account, params, caller=""):
    """A listener's port, protocol (HTTP) or default actions; the data plane rebinds a new port."""
    listener = get_listener(account, _required(params, "ListenerArn"))
    for https_only in ("SslPolicy", "Certificates", "AlpnPolicy", "MutualAuthentication"):
        if params.get(https_only):
            raise error("UnsupportedProtocolException",
                        f"{https_only} applies to HTTPS listeners: Fargate Lab listeners speak HTTP")
    protocol = params.get("Protocol", listener.protocol)
    if protocol != "HTTP":
        raise error("UnsupportedProtocolException", f"Protocol '{protocol}' is not supported: Fargate Lab listeners speak HTTP")
    port = params.get("Port", listener.port)
    if not 1 <= port <= 65535:
        raise ElbError("ValidationError", "Port must be between 1 and 65535")
    if port != listener.port:
        same_port = Listener.objects.filter(port=port).select_related("load_balancer").first()
        if same_port is not None:
            if same_port.load_balancer_id == listener.load_balancer_id:
                raise error("DuplicateListenerException", f"A listener already exists on port {port}")
            raise error("InvalidConfigurationRequestException",
                        f"Port {port} is taken by load balancer '{same_port.load_balancer.name}': every load balancer "
                        f"of the lab listens on {listen_address()}, so each listener needs a port of its own")
        reason = port_bindable(port)
        if reason:
            raise error("InvalidConfigurationRequestException", reason[0].upper() + reason[1:])
    actions = listener.default_actions
    if params.get("DefaultActions"):
        actions, _ = _check_actions(account, params["DefaultActions"])
    from orchestrator.elbv2 import rules

    with transaction.atomic():
        Listener.objects.filter(pk=listener.pk).update(port=port, protocol=protocol, default_actions=actions)
        listener.port, listener.protocol, listener.default_actions = port, protocol, actions
        rules.associate(listener)
    _changed("listener", listener, "ModifyListener", listener.arn, listener.url, caller)
    return {"Listeners": [listener_shape(listener)]}


def delete_listener(account, params, caller=""):
    listener = get_listener(account, _required(params, "ListenerArn"))
    arn, pk = listener.arn, listener.pk
    listener.delete()
    listener.pk = pk
    _changed("listener", listener, "DeleteListener", arn, caller=caller)
    return {}


# --- targets ------------------------------------------------------------------------------


def instance_address(instance):
    """The host address where an instance's published ports answer."""
    url = instance.engine_url or ""
    match = re.match(r"^(?:tcp|http|https)://([^:/]+)", url)
    if match:
        return match.group(1)
    address = network.publish_address()
    return "127.0.0.1" if address in network.WILDCARDS else address


def _resolve_target(tg, target):
    """(target_id, port, address, connect_port, task) for one RegisterTargets entry, or InvalidTarget.

    A target must be inside the target group's VPC, which in the lab is its account's own
    cluster networks: an ``ip`` target the private IP of one of the account's tasks, an
    ``instance`` target a port one of them publishes on that instance. Anything else (the
    host's 127.0.0.1, the registry, another account's containers) is refused, so that a
    listener cannot become a proxy and DescribeTargetHealth a port scanner.
    """
    target_id = str(target.get("Id", ""))
    port = target.get("Port") or tg.port
    if not 1 <= port <= 65535:
        raise error("InvalidTargetException", f"Port {port} of target '{target_id}' is not valid")
    vpc = tg.vpc_id or VPC_ID
    if tg.target_type == "ip":
        try:
            ipaddress.ip_address(target_id)
        except ValueError:
            raise error("InvalidTargetException", f"The IP address '{target_id[:64]}' is not a valid IPv4 address") from None
        task = _own_tasks(tg).filter(private_ip=target_id).first()
        if task is None:
            raise error("InvalidTargetException",
                        f"The IP address '{target_id}' is not within the VPC '{vpc}' of target group '{tg.name}': "
                        "an ip target must be the private IP of one of this account's running tasks")
        address, connect_port = _published(task, port) or (target_id, port)
        return target_id, port, address, connect_port, task
    instance = ContainerInstance.objects.filter(instance_id=target_id).first() or ContainerInstance.objects.filter(
        name=target_id
    ).first()
    if instance is None:
        raise error("InvalidTargetException", f"The following targets are not valid instances: '{target_id[:64]}'")
    task = next((t for t in _own_tasks(tg).filter(container_instance=instance) if _publishes(t, port)), None)
    if task is None:
        raise error("InvalidTargetException",
                    f"The following targets are not in the target group VPC '{vpc}': '{target_id}:{port}' "
                    f"(no task of this account publishes port {port} on that instance)")
    return target_id, port, instance_address(instance), port, task


def _own_tasks(tg):
    """The target group's account's tasks that still have their network (not yet STOPPED)."""
    return Task.objects.filter(account_id=tg.account_id).exclude(last_status=Task.STOPPED)


def _bindings(task):
    return [b for c in task.containers.all() for b in (c.network_bindings or [])]


def _published(task, container_port):
    """(host address, host port) where the task publishes ``container_port``, or None."""
    for binding in _bindings(task):
        if int(binding.get("containerPort") or 0) == container_port and binding.get("hostPort"):
            address = binding.get("bindIP") or "127.0.0.1"
            return ("127.0.0.1" if address in ("0.0.0.0", "::", "") else address), int(binding["hostPort"])
    return None


def _publishes(task, host_port):
    """Whether one of the task's containers publishes ``host_port`` on its instance."""
    return any(int(b.get("hostPort") or 0) == host_port for b in _bindings(task))


def register(tg, target_id, port, address, connect_port, task=None, availability_zone=""):
    """Register one target (or bring a draining one back); returns the Target row."""
    now = timezone.now()
    target, created = Target.objects.get_or_create(
        target_group=tg, target_id=target_id, port=port,
        defaults={"address": address, "connect_port": connect_port, "task": task,
                  "availability_zone": availability_zone},
    )
    if not created:
        fields = {"address": address, "connect_port": connect_port, "updated_at": now}
        if target.state == Target.DRAINING:
            fields.update(state=Target.INITIAL, reason="Elb.RegistrationInProgress", description="", drain_until=None)
        if task is not None:
            fields["task"] = task
        Target.objects.filter(pk=target.pk).update(**fields)
        target.refresh_from_db()
    bus.publish("target", target.pk)
    return target


def drain(target):
    """Start deregistering one target; returns the seconds its draining takes."""
    delay = target.target_group.deregistration_delay
    if delay <= 0:
        Target.objects.filter(pk=target.pk).delete()
    else:
        Target.objects.filter(pk=target.pk).update(
            state=Target.DRAINING, reason="Target.DeregistrationInProgress", description="",
            drain_until=timezone.now() + timedelta(seconds=delay), updated_at=timezone.now(),
        )
    bus.publish("target", target.pk)
    return delay


def register_targets(account, params, caller=""):
    tg = get_target_group(account, _required(params, "TargetGroupArn"))
    resolved = [(_resolve_target(tg, t), t.get("AvailabilityZone", "")) for t in _required(params, "Targets")]
    # The target is linked to its task: it follows the task's address when the task moves,
    # drains when the task stops and is forgotten once it stopped, so it never points at an
    # address or host port that a later container (maybe another account's) is given.
    for (target_id, port, address, connect_port, task), zone in resolved:
        register(tg, target_id, port, address, connect_port, task=task, availability_zone=zone)
    activity.record("load_balancer", "RegisterTargets", tg.arn,
                    ", ".join(f"{r[0][0]}:{r[0][1]}" for r in resolved), caller=caller)
    return {}


def deregister_targets(account, params, caller=""):
    tg = get_target_group(account, _required(params, "TargetGroupArn"))
    found, missing = [], []
    for target in _required(params, "Targets"):
        port = target.get("Port") or tg.port
        row = tg.targets.filter(target_id=str(target.get("Id", "")), port=port).first()
        (found if row else missing).append(row or f"{target.get('Id')}:{port}")
    if missing:
        raise error("InvalidTargetException", f"The following targets are not registered: {', '.join(missing)}")
    for row in found:
        drain(row)
    activity.record("load_balancer", "DeregisterTargets", tg.arn,
                    ", ".join(f"{r.target_id}:{r.port}" for r in found), caller=caller)
    return {}


def forget_unowned_targets():
    """Delete targets tied to no task; returns how many.

    Every target is registered for one of its account's own tasks (by the agent or through
    RegisterTargets); one without a task was registered before that rule, or outlived its
    task's row, and could point at any address of the host: it is not kept.
    """
    gone = Target.objects.filter(task__isnull=True)
    pks = list(gone.values_list("pk", flat=True))
    gone.delete()
    for pk in pks:
        bus.publish("target", pk)
    return len(pks)


def forget_drained(queryset=None):
    """Delete targets whose draining time is over; returns how many. Looks first and writes only
    when there is one: DescribeTargetHealth and every load balancer sync call it, and a DELETE of
    nothing still took a turn at the state database's write lock (behind every writer)."""
    now = timezone.now()
    pks = list((queryset if queryset is not None else Target.objects).filter(
        state=Target.DRAINING, drain_until__lte=now).values_list("pk", flat=True))
    if not pks:
        return 0
    count, _ = Target.objects.filter(pk__in=pks, state=Target.DRAINING, drain_until__lte=now).delete()
    return count


def describe_target_health(account, params, caller=""):
    tg = get_target_group(account, _required(params, "TargetGroupArn"))
    forget_drained(tg.targets.all())
    in_use = tg.listeners.exists()
    rows = list(tg.targets.select_related("target_group"))
    wanted = params.get("Targets")
    if not wanted:
        return {"TargetHealthDescriptions": [target_health_shape(t, in_use) for t in rows]}
    result = []
    for target in wanted:
        port = target.get("Port") or tg.port
        row = next((t for t in rows if t.target_id == str(target.get("Id")) and t.port == port), None)
        if row is not None:
            result.append(target_health_shape(row, in_use))
        else:
            result.append({
                "Target": {"Id": str(target.get("Id")), "Port": port},
                "HealthCheckPort": str(port),
                "TargetHealth": {"State": "unused", "Reason": "Target.NotRegistered",
                                 "Description": TARGET_HEALTH_TEXT["Target.NotRegistered"]},
            })
    return {"TargetHealthDescriptions": result}


OPERATIONS = {
    "CreateLoadBalancer": create_load_balancer,
    "DescribeLoadBalancers": describe_load_balancers,
    "DeleteLoadBalancer": delete_load_balancer,
    "CreateTargetGroup": create_target_group,
    "DescribeTargetGroups": describe_target_groups,
    "DeleteTargetGroup": delete_target_group,
    "ModifyTargetGroup": modify_target_group,
    "DescribeTargetGroupAttributes": describe_target_group_attributes,
    "ModifyTargetGroupAttributes": modify_target_group_attributes,
    "CreateListener": create_listener,
    "DescribeListeners": describe_listeners,
    "DeleteListener": delete_listener,
    "RegisterTargets": register_targets,
    "DeregisterTargets": deregister_targets,
    "DescribeTargetHealth": describe_target_health,
    "ModifyListener": modify_listener,
    "SetSubnets": set_subnets,
    "SetSecurityGroups": set_security_groups,
    "SetIpAddressType": set_ip_address_type,
    "DescribeAccountLimits": describe_account_limits,
}

# Attributes, rules and tags build on the helpers above; each adds its operations to OPERATIONS.
from orchestrator.elbv2 import attributes, rules, tagging  # noqa: E402,F401

# ELBv2 operations that cannot apply to the lab, each answered with the reason.
_HTTPS = "Fargate Lab listeners speak HTTP: there are no certificates, TLS policies or trust stores to manage"
REFUSED = {
    **{name: ("UnsupportedProtocolException", _HTTPS) for name in (
        "AddListenerCertificates", "RemoveListenerCertificates", "DescribeListenerCertificates", "DescribeSSLPolicies",
        "CreateTrustStore", "DeleteTrustStore", "DescribeTrustStores", "ModifyTrustStore",
        "AddTrustStoreRevocations", "RemoveTrustStoreRevocations", "DescribeTrustStoreRevocations",
        "DescribeTrustStoreAssociations", "DeleteSharedTrustStoreAssociation",
        "GetTrustStoreCaCertificatesBundle", "GetTrustStoreRevocationContent")},
    **{name: ("OperationNotPermittedException",
              "Fargate Lab load balancers run on the lab's own host: there is no load balancer capacity to reserve")
       for name in ("DescribeCapacityReservation", "ModifyCapacityReservation")},
    "ModifyIpPools": ("OperationNotPermittedException",
                      "Fargate Lab load balancers take the lab host's address: there are no IPAM pools"),
    "GetResourcePolicy": ("OperationNotPermittedException",
                          "Fargate Lab does not share load balancer resources between accounts (no resource policies)"),
}
