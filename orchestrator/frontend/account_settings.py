"""ECS account settings: PutAccountSetting(Default), ListAccountSettings, DeleteAccountSetting.

A setting belongs to a principal of the account (its root user, an IAM user or role); the
root user's value is the default of every principal that set none, and ECS's own default
applies where the root user set none either. The lab has no IAM users: requests act as the
account's root user unless they name another principal.
"""
import re
from dataclasses import dataclass

from django.utils import timezone

from orchestrator.frontend import EcsError
from orchestrator.frontend.operations import _page, _paged_response, operation
from orchestrator.models import AccountSetting

ON_OFF = ("enabled", "disabled")


@dataclass(frozen=True)
class SettingRule:
    """What a setting accepts, ECS's default, and what the lab does with it."""

    values: tuple
    default: str
    effect: str
    refused: dict = None  # value -> why the lab refuses it
    read_only: str = ""
    root_only: bool = False


SETTINGS = {
    "serviceLongArnFormat": SettingRule(
        ON_OFF, "enabled", "Only enabled is accepted: the lab's service ARNs always have the long format.",
        refused={"disabled": "Fargate Lab always uses the long ARN format for services."}),
    "taskLongArnFormat": SettingRule(
        ON_OFF, "enabled", "Only enabled is accepted: the lab's task ARNs always have the long format.",
        refused={"disabled": "Fargate Lab always uses the long ARN format for tasks."}),
    "containerInstanceLongArnFormat": SettingRule(
        ON_OFF, "enabled", "Only enabled is accepted: container instance ARNs always have the long format.",
        refused={"disabled": "Fargate Lab always uses the long ARN format for container instances."}),
    "awsvpcTrunking": SettingRule(
        ON_OFF, "disabled", "Stored only: ENI trunking is for EC2 container instances and, as on AWS, "
        "changes nothing for Fargate tasks."),
    "containerInsights": SettingRule(
        ("enhanced", "enabled", "disabled"), "disabled",
        "Honoured: the containerInsights cluster setting of clusters created without one (no metrics are collected)."),
    "fargateFIPSMode": SettingRule(
        ON_OFF, "disabled", "Only disabled is accepted: the lab has no FIPS 140 validated endpoints.",
        refused={"enabled": "Fargate Lab has no FIPS 140 validated endpoints; fargateFIPSMode stays disabled."}),
    "tagResourceAuthorization": SettingRule(
        ("on", "off"), "on", "Stored only: the lab has no IAM, so tagging on create needs no ecs:TagResource grant."),
    "fargateTaskRetirementWaitPeriod": SettingRule(
        ("0", "7", "14"), "7", "Stored only: the lab never retires tasks for platform maintenance.", root_only=True),
    "guardDutyActivate": SettingRule(
        ON_OFF, "disabled", "Read-only, as on AWS (Amazon GuardDuty controls it); the lab has no GuardDuty.",
        read_only="guardDutyActivate is read-only: Amazon GuardDuty controls it, and Fargate Lab has none."),
    "defaultLogDriverMode": SettingRule(
        ("blocking", "non-blocking"), "non-blocking",
        "Stored only: the lab keeps container logs itself and does not apply a log driver mode."),
    "fargateEventWindows": SettingRule(
        ON_OFF, "disabled", "Stored only: the lab schedules no maintenance events, so there are no windows."),
}
MAX_LIST_RESULTS = 10
_PRINCIPAL_RE = re.compile(r"arn:aws[a-z-]*:(iam|sts)::([0-9]{12}):(root|user/.+|role/.+|assumed-role/.+)")


def root_arn(account):
    """The ARN of the account's root user, the principal a request acts as."""
    return f"arn:aws:iam::{account.account_id}:root"


def _principal(ctx, params):
    """The principal a request names (default: the root user), checked to be of this account."""
    arn = params.get("principalArn") or root_arn(ctx.account)
    match = _PRINCIPAL_RE.fullmatch(arn)
    if not match or match.group(2) != ctx.account.account_id:
        raise EcsError(
            "InvalidParameterException",
            "principalArn must be the ARN of the root user, an IAM user or a role of this account.",
        )
    if match.group(1) == "sts":
        raise EcsError("InvalidParameterException",
                       "Federated users assume the root user's account settings and cannot have their own.")
    return arn


def _check_value(name, value, principal, account):
    """Refuse a value ECS refuses for ``name``, or one the lab cannot honour, saying why."""
    rule = SETTINGS[name]
    if rule.read_only:
        raise EcsError("InvalidParameterException", rule.read_only)
    if value not in rule.values:
        raise EcsError(
            "InvalidParameterException",
            f"Invalid value {value[:64]!r} for the account setting {name}: use {', '.join(rule.values)}.",
        )
    if rule.root_only and principal != root_arn(account):
        raise EcsError("InvalidParameterException", f"Only the root user can set {name}.")
    if rule.refused and value in rule.refused:
        raise EcsError("InvalidParameterException", rule.refused[value])


def _shape(name, value, principal, kind="user"):
    """One Setting as ECS returns it."""
    return {"name": name, "value": value, "principalArn": principal, "type": kind}


def _put(ctx, name, value, principal):
    """Store one setting of one principal; return it in ECS's shape."""
    _check_value(name, value, principal, ctx.account)
    AccountSetting.objects.update_or_create(
        account=ctx.account, principal_arn=principal, name=name,
        defaults={"value": value, "updated_at": timezone.now()},
    )
    return {"setting": _shape(name, value, principal)}


def effective(account, name, principal=None):
    """The value of a setting for ``principal`` (default root): its own, else the root's, else ECS's default."""
    root = root_arn(account)
    rows = dict(AccountSetting.objects.filter(account=account, name=name,
                                              principal_arn__in={principal or root, root})
                .values_list("principal_arn", "value"))
    return rows.get(principal or root) or rows.get(root) or SETTINGS[name].default


@operation("PutAccountSetting")
def put_account_setting(ctx, params):
    """Set one account setting for a principal (default: the root user, which sets the default)."""
    return _put(ctx, params["name"], params["value"], _principal(ctx, params))


@operation("PutAccountSettingDefault")
def put_account_setting_default(ctx, params):
    """Set one account setting for every principal that has not set its own (the root user's)."""
    return _put(ctx, params["name"], params["value"], root_arn(ctx.account))


@operation("DeleteAccountSetting")
def delete_account_setting(ctx, params):
    """Remove a principal's own setting; it falls back to the root user's value or ECS's default."""
    principal = _principal(ctx, params)
    name = params["name"]
    if SETTINGS[name].read_only:
        raise EcsError("InvalidParameterException", SETTINGS[name].read_only)
    row = AccountSetting.objects.filter(account=ctx.account, principal_arn=principal, name=name).first()
    if row is None:
        raise EcsError("InvalidParameterException",
                       f"The account setting {name} is not set for the principal {principal}.")
    row.delete()
    return {"setting": _shape(name, row.value, principal)}


@operation("ListAccountSettings")
def list_account_settings(ctx, params):
    """A principal's own settings, or with effectiveSettings every setting's effective value."""
    principal = _principal(ctx, params)
    max_results = params.get("maxResults", MAX_LIST_RESULTS)
    if not 1 <= max_results <= MAX_LIST_RESULTS:
        raise EcsError("InvalidParameterException", f"maxResults must be between 1 and {MAX_LIST_RESULTS}.")
    names = [params["name"]] if "name" in params else list(SETTINGS)
    own = dict(AccountSetting.objects.filter(account=ctx.account, principal_arn=principal)
               .values_list("name", "value"))
    if params.get("effectiveSettings"):
        root = dict(AccountSetting.objects.filter(account=ctx.account, principal_arn=root_arn(ctx.account))
                    .values_list("name", "value"))
        settings = []
        for name in names:
            value = own.get(name) or root.get(name) or SETTINGS[name].default
            kind = "aws_managed" if SETTINGS[name].read_only else "user"
            settings.append(_shape(name, value, principal, kind))
    else:
        settings = [_shape(name, own[name], principal) for name in names if name in own]
    if "value" in params:
        settings = [s for s in settings if s["value"] == params["value"]]
    items, token = _page(settings, {**params, "maxResults": max_results}, lambda s: s)
    return _paged_response("settings", items, token)


def readme_section():
    """The README's table of account settings: values, ECS's default, and what the lab does."""
    lines = ["| Setting | Values | Default | In the lab |", "| --- | --- | --- | --- |"]
    lines += [f"| `{name}` | {', '.join(rule.values)} | {rule.default} | {rule.effect} |" for name, rule in SETTINGS.items()]
    return "\n".join(lines) + "\n"
