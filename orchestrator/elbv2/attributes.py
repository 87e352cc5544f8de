"""Describe/ModifyLoadBalancerAttributes and Describe/ModifyListenerAttributes.

Every attribute ELBv2 lists for an application load balancer is answered with its value. Those
the lab's data plane honours can be set to any valid value; the others (S3 logs, WAF, zonal
shift, HTTPS-only ones) keep their default, and setting one to anything else is refused with the
reason, never stored and then ignored.
"""
import re

from orchestrator.elbv2 import operations as ops
from orchestrator.elbv2.protocol import ElbError, error
from orchestrator.frontend import wire

_BOOL = ("true", "false")


def _range(low, high):
    def check(value):
        number = wire.ascii_int(value, max_digits=6)
        return number is not None and low <= number <= high
    check.text = f"an integer from {low} to {high}"
    return check


def _one_of(*values):
    def check(value):
        return value in values
    check.text = " or ".join(values)
    return check


def _header_value(value):
    # A header value the data plane writes as is: printable, without CR or LF (no injection).
    return len(value) <= 1024 and re.fullmatch(r"[\x20-\x7e]*", value) is not None


_header_value.text = "at most 1024 printable ASCII characters"

# key: (default, check of a new value, or the reason the lab keeps the default)
LOAD_BALANCER = {
    "deletion_protection.enabled": ("false", _one_of(*_BOOL)),
    "idle_timeout.timeout_seconds": ("60", _range(1, 4000)),
    "routing.http.xff_header_processing.mode": ("append", _one_of("append", "preserve", "remove")),
    "routing.http.xff_client_port.enabled": ("false", _one_of(*_BOOL)),
    # The Host header reaches targets as the client sent it, with the listener's own port: the
    # same with either value, since the lab's listeners are reached on their port.
    "routing.http.preserve_host_header.enabled": ("false", _one_of(*_BOOL)),
    # HTTP/2 is offered on HTTPS listeners only, on AWS too; the lab's listeners speak HTTP.
    "routing.http2.enabled": ("true", _one_of(*_BOOL)),
    "load_balancing.cross_zone.enabled": ("true", "an application load balancer always balances across zones"),
    "access_logs.s3.enabled": ("false", "the lab serves no S3 for access logs (the dashboard shows each request's trace)"),
    "access_logs.s3.bucket": ("", "the lab serves no S3 for access logs"),
    "access_logs.s3.prefix": ("", "the lab serves no S3 for access logs"),
    "connection_logs.s3.enabled": ("false", "the lab serves no S3 for connection logs"),
    "connection_logs.s3.bucket": ("", "the lab serves no S3 for connection logs"),
    "connection_logs.s3.prefix": ("", "the lab serves no S3 for connection logs"),
    "health_check_logs.s3.enabled": ("false", "the lab serves no S3 for health check logs"),
    "health_check_logs.s3.bucket": ("", "the lab serves no S3 for health check logs"),
    "health_check_logs.s3.prefix": ("", "the lab serves no S3 for health check logs"),
    "client_keep_alive.seconds": ("3600", "the lab's listeners keep client connections as aiohttp does"),
    "routing.http.desync_mitigation_mode": ("defensive", "the lab's listeners parse requests strictly (aiohttp)"),
    "routing.http.drop_invalid_header_fields.enabled": ("false", "the lab's listeners refuse invalid headers outright"),
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": ("false", "the lab's listeners speak HTTP, not TLS"),
    "waf.fail_open.enabled": ("false", "the lab has no WAF"),
    "zonal_shift.config.enabled": ("false", "the lab's load balancers run in one place: there is no zone to shift from"),
    "ipv6.deny_all_igw_traffic": ("false", "the lab's load balancers are IPv4 only"),
}

RESPONSE_HEADERS = {
    "routing.http.response.strict_transport_security.header_value": "Strict-Transport-Security",
    "routing.http.response.access_control_allow_origin.header_value": "Access-Control-Allow-Origin",
    "routing.http.response.access_control_allow_methods.header_value": "Access-Control-Allow-Methods",
    "routing.http.response.access_control_allow_headers.header_value": "Access-Control-Allow-Headers",
    "routing.http.response.access_control_allow_credentials.header_value": "Access-Control-Allow-Credentials",
    "routing.http.response.access_control_expose_headers.header_value": "Access-Control-Expose-Headers",
    "routing.http.response.access_control_max_age.header_value": "Access-Control-Max-Age",
    "routing.http.response.content_security_policy.header_value": "Content-Security-Policy",
    "routing.http.response.x_content_type_options.header_value": "X-Content-Type-Options",
    "routing.http.response.x_frame_options.header_value": "X-Frame-Options",
}
_TLS_ONLY = "the lab's listeners speak HTTP: there is no TLS or client certificate to describe"
LISTENER = {
    "routing.http.response.server.enabled": (
        "true", "the lab's listeners always send a Server header (awselb/2.0 on the answers the load balancer writes itself)"),
    **{key: ("", _header_value) for key in RESPONSE_HEADERS},
    **{f"routing.http.request.{name}.header_name": ("", _TLS_ONLY) for name in (
        "x_amzn_mtls_clientcert_serial_number", "x_amzn_mtls_clientcert_issuer", "x_amzn_mtls_clientcert_subject",
        "x_amzn_mtls_clientcert_validity", "x_amzn_mtls_clientcert_leaf", "x_amzn_mtls_clientcert",
        "x_amzn_tls_version", "x_amzn_tls_cipher_suite")},
}


def values(table, stored):
    """Every attribute of ``table`` with its value: the stored one, else the default."""
    return {key: stored.get(key, default) for key, (default, _) in table.items()}


def _shape(table, stored):
    return [{"Key": key, "Value": value} for key, value in values(table, stored).items()]


def _modified(table, stored, attributes, what):
    """``stored`` with ``attributes`` applied, each checked; only values off the default are kept."""
    stored = dict(stored)
    for attribute in attributes:
        key, value = attribute.get("Key"), str(attribute.get("Value", ""))
        if key not in table:
            raise error("InvalidConfigurationRequestException",
                        f"'{str(key)[:128]}' is not an attribute of an application load balancer's {what}")
        default, check = table[key]
        if isinstance(check, str):
            if value != default:
                raise error("InvalidConfigurationRequestException",
                            f"Fargate Lab keeps {key} at '{default}': {check}")
        elif not check(value):
            raise ElbError("ValidationError", f"{key} must be {check.text}, not '{value[:64]}'")
        if value == default:
            stored.pop(key, None)
        else:
            stored[key] = value
    return stored


def _modify(obj, table, params, what, kind, action, caller):
    """Apply ModifyXAttributes to ``obj`` (a load balancer or a listener): all checked, then written."""
    obj.attributes = _modified(table, obj.attributes, ops._required(params, "Attributes"), what)
    type(obj).objects.filter(pk=obj.pk).update(attributes=obj.attributes)
    ops._changed(kind, obj, action, obj.arn, ", ".join(f"{k}={v}" for k, v in obj.attributes.items()), caller)
    return {"Attributes": _shape(table, obj.attributes)}


def describe_load_balancer_attributes(account, params, caller=""):
    lb = ops.get_load_balancer(account, ops._required(params, "LoadBalancerArn"))
    return {"Attributes": _shape(LOAD_BALANCER, lb.attributes)}


def modify_load_balancer_attributes(account, params, caller=""):
    lb = ops.get_load_balancer(account, ops._required(params, "LoadBalancerArn"))
    return _modify(lb, LOAD_BALANCER, params, "load balancer", "load_balancer", "ModifyLoadBalancerAttributes", caller)


def describe_listener_attributes(account, params, caller=""):
    listener = ops.get_listener(account, ops._required(params, "ListenerArn"))
    return {"Attributes": _shape(LISTENER, listener.attributes)}


def modify_listener_attributes(account, params, caller=""):
    listener = ops.get_listener(account, ops._required(params, "ListenerArn"))
    return _modify(listener, LISTENER, params, "listener", "listener", "ModifyListenerAttributes", caller)


def response_headers(listener_attributes):
    """The headers a listener sets on every response, from its attributes: (name, value) pairs."""
    return [(RESPONSE_HEADERS[key], value) for key, value in listener_attributes.items()
            if key in RESPONSE_HEADERS and value]


OPERATIONS = {
    "DescribeLoadBalancerAttributes": describe_load_balancer_attributes,
    "ModifyLoadBalancerAttributes": modify_load_balancer_attributes,
    "DescribeListenerAttributes": describe_listener_attributes,
    "ModifyListenerAttributes": modify_listener_attributes,
}
ops.OPERATIONS.update(OPERATIONS)
