"""Service deployments and service revisions: a service's rollouts as ECS shows them.

Each Deployment row is one rollout the cluster manager performs (PRIMARY, ACTIVE, INACTIVE in
DescribeServices). The same row is a *service deployment* (ListServiceDeployments,
DescribeServiceDeployments, StopServiceDeployment) and names the *service revision* it deploys
(DescribeServiceRevisions): the task definition and the service's configuration at the time. A
rollback — by the circuit breaker or by StopServiceDeployment — is a row of its own for the
cluster manager, shown as the ROLLBACK_* states of the service deployment it rolls back.

The rollout itself (rolling limits, circuit breaker, restart throttling) is the cluster
manager's, in ``orchestrator.deployments``; this module writes the rows it acts on.
"""
import json
from datetime import datetime, timezone as dt_timezone

from django.utils import timezone

from orchestrator import bus
from orchestrator.deployments import CIRCUIT_BREAKER_REASON, circuit_breaker_threshold
from orchestrator.frontend import EcsError
from orchestrator.frontend.operations import _ARN_RE, _cluster_of, _decode_token, _encode_token, in_region, operation
from orchestrator.frontend.shapes import PLATFORM_VERSION, _compact, epoch
from orchestrator.models import Deployment, Service, region

DEFAULT_DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}
# The ECS deployment controller's ROLLING strategy is what the cluster manager performs.
ROLLING_ONLY = (
    "Fargate Lab deploys services with the ROLLING strategy of the ECS deployment controller; "
    "{what} is not supported."
)
MAX_DESCRIBED = 20
# The stop types of StopServiceDeployment; ABORT applies to blue/green deployments only.
STOP_TYPES = ("ROLLBACK",)


def _deployment_configuration(given, current=None):
    """The service's deploymentConfiguration: ``given`` over ``current`` over ECS's defaults."""
    conf = json.loads(json.dumps(current or DEFAULT_DEPLOYMENT_CONFIGURATION))
    for key, value in (given or {}).items():
        if key == "deploymentCircuitBreaker":
            conf[key] = {**conf.get(key, {}), **value}
        else:
            conf[key] = value
    if not 0 <= conf.get("minimumHealthyPercent", 100) <= 100:
        raise EcsError("InvalidParameterException", "minimumHealthyPercent must be between 0 and 100.")
    if not 100 <= conf.get("maximumPercent", 200) <= 400:
        raise EcsError("InvalidParameterException", "maximumPercent must be between 100 and 400.")
    if conf.get("strategy", "ROLLING") != "ROLLING":
        raise EcsError("InvalidParameterException", ROLLING_ONLY.format(what=f"the {conf['strategy']} strategy"))
    for key in ("lifecycleHooks", "linearConfiguration", "canaryConfiguration", "bakeTimeInMinutes"):
        if conf.get(key):
            raise EcsError("InvalidParameterException", ROLLING_ONLY.format(what=key))
    return conf


def check_deployment_controller(params):
    """Refuse, on UpdateService of a service of the ECS deployment controller, another controller:
    Fargate Lab does not move a service from one controller to another."""
    kind = (params.get("deploymentController") or {}).get("type", "ECS")
    if kind != "ECS":
        raise EcsError(
            "InvalidParameterException",
            f"Fargate Lab does not change a service's deployment controller: this service uses the ECS "
            f"controller, not {str(kind)[:64]}. Create a new service with the EXTERNAL controller for task sets.",
        )


def revision_of(service):
    """The service's configuration a new deployment deploys (its service revision)."""
    return {
        "capacityProviderStrategy": list(service.capacity_provider_strategy),
        "launchType": service.launch_type,
        "loadBalancers": list(service.load_balancers),
        "networkConfiguration": dict(service.network_configuration),
        "deploymentConfiguration": dict(service.deployment_configuration),
        "serviceRegistries": list(service.service_registries),
        "serviceConnectConfiguration": dict(service.service_connect_configuration),
    }


def _new_deployment(service):
    """Make a new PRIMARY deployment of a new service revision; older PRIMARY ones become ACTIVE
    (one still in progress is stopped: the new one replaces it)."""
    now = timezone.now()
    live = service.deployments.exclude(status=Deployment.INACTIVE)
    sources = [d.revision_number for d in live]
    live.filter(status=Deployment.PRIMARY, rollout_state=Deployment.IN_PROGRESS, stopped_at=None).update(
        stopped_at=now)
    live.filter(status=Deployment.PRIMARY).update(status=Deployment.ACTIVE, updated_at=now)
    deployment_id = Deployment.new_id()
    return Deployment.objects.create(
        service=service, deployment_id=deployment_id, status=Deployment.PRIMARY,
        task_definition=service.task_definition, desired_count=service.desired_count,
        rollout_state=Deployment.IN_PROGRESS, created_at=now, updated_at=now,
        revision_id=deployment_id.rsplit("/", 1)[-1], revision=revision_of(service), source_revisions=sources,
    )


# --- what ECS shows --------------------------------------------------------------------------


def _rollback(deployment):
    """The newest rollback deployment of a service deployment, or None."""
    return deployment.rollbacks.order_by("-pk").first()


def status(deployment, rollback=None):
    """(status, statusReason) of a service deployment, as ECS names them."""
    if rollback is not None:
        if rollback.rollout_state == Deployment.COMPLETED:
            return "ROLLBACK_SUCCESSFUL", deployment.rollout_state_reason
        if rollback.rollout_state == Deployment.FAILED:
            return "ROLLBACK_FAILED", rollback.rollout_state_reason
        if rollback.status != Deployment.PRIMARY:
            return "STOPPED", "A newer service deployment replaced the rollback before it completed."
        return "ROLLBACK_IN_PROGRESS", deployment.rollout_state_reason
    if deployment.rollout_state == Deployment.COMPLETED:
        return "SUCCESSFUL", deployment.rollout_state_reason
    if deployment.rollout_state == Deployment.FAILED:
        return "STOPPED", deployment.rollout_state_reason
    if deployment.stop_requested:
        return "ROLLBACK_REQUESTED", "StopServiceDeployment asked for a rollback."
    if deployment.status == Deployment.PRIMARY and deployment.service.status == Service.ACTIVE:
        return "IN_PROGRESS", ""
    if deployment.service.status != Service.ACTIVE:
        return "STOPPED", "The service was deleted before the deployment completed."
    return "STOPPED", "A newer service deployment replaced this one before it completed."


def _revision_summary(deployment, live):
    """A ServiceRevisionSummary: the revision's ARN and its tasks now (from its live deployment)."""
    current = live.get(deployment.revision_number)
    return {
        "arn": deployment.service_revision_arn,
        "requestedTaskCount": current.desired_count if current else 0,
        "runningTaskCount": current.running_count if current else 0,
        "pendingTaskCount": current.pending_count if current else 0,
    }


def _live_by_revision(service):
    """Revision id -> the service's live (PRIMARY or ACTIVE) deployment of it."""
    return {d.revision_number: d for d in reversed(service.deployments.exclude(status=Deployment.INACTIVE))}


def _circuit_breaker(deployment, configuration):
    """The ServiceDeploymentCircuitBreaker of a service deployment."""
    breaker = configuration.get("deploymentCircuitBreaker") or {}
    if not breaker.get("enable"):
        state = "DISABLED"
    elif deployment.rollout_state_reason == CIRCUIT_BREAKER_REASON:
        state = "TRIGGERED"
    elif deployment.rollout_state == Deployment.IN_PROGRESS and deployment.status == Deployment.PRIMARY:
        state = "MONITORING"
    else:
        state = "MONITORING_COMPLETE"
    return {"status": state, "failureCount": deployment.failed_tasks,
            "threshold": circuit_breaker_threshold(deployment.desired_count or deployment.service.desired_count)}


def brief_shape(deployment):
    """A ServiceDeploymentBrief (ListServiceDeployments)."""
    rollback = _rollback(deployment)
    state, reason = status(deployment, rollback)
    service = deployment.service
    return _compact({
        "serviceDeploymentArn": deployment.service_deployment_arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster.arn,
        "startedAt": epoch(deployment.created_at),
        "createdAt": epoch(deployment.created_at),
        "finishedAt": epoch(_finished_at(deployment, rollback)),
        "targetServiceRevisionArn": deployment.service_revision_arn,
        "status": state,
        "statusReason": reason or None,
    })


def _finished_at(deployment, rollback):
    """When the service deployment finished: its rollout, or its rollback, completed."""
    return rollback.finished_at if rollback is not None else deployment.finished_at


def service_deployment_shape(deployment):
    """A ServiceDeployment (DescribeServiceDeployments)."""
    rollback = _rollback(deployment)
    state, reason = status(deployment, rollback)
    service = deployment.service
    live = _live_by_revision(service)
    sources = Deployment.objects.filter(service=service, rollback_of=None).select_related(
        "service__account", "service__cluster")
    by_revision = {d.revision_number: d for d in sources}
    configuration = deployment.revision.get("deploymentConfiguration") or dict(service.deployment_configuration)
    data = {
        "serviceDeploymentArn": deployment.service_deployment_arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster.arn,
        "createdAt": epoch(deployment.created_at),
        "startedAt": epoch(deployment.created_at),
        "finishedAt": epoch(_finished_at(deployment, rollback)),
        "stoppedAt": epoch(deployment.stopped_at),
        "updatedAt": epoch(max(deployment.updated_at, rollback.updated_at) if rollback else deployment.updated_at),
        "sourceServiceRevisions": [
            _revision_summary(by_revision[number], live) for number in deployment.source_revisions
            if number in by_revision
        ],
        "targetServiceRevision": {
            "arn": deployment.service_revision_arn,
            "requestedTaskCount": deployment.desired_count,
            "runningTaskCount": deployment.running_count,
            "pendingTaskCount": deployment.pending_count,
        },
        "status": state,
        "statusReason": reason or None,
        "deploymentConfiguration": configuration,
        "deploymentCircuitBreaker": _circuit_breaker(deployment, configuration),
    }
    if rollback is not None:
        data["rollback"] = {"reason": deployment.rollout_state_reason, "startedAt": epoch(rollback.created_at),
                            "serviceRevisionArn": rollback.service_revision_arn}
    return _compact(data)


def service_revision_shape(deployment):
    """A ServiceRevision (DescribeServiceRevisions): what the deployment that made it deployed."""
    service, revision = deployment.service, deployment.revision
    strategy = revision.get("capacityProviderStrategy", service.capacity_provider_strategy)
    td = deployment.task_definition
    return _compact({
        "serviceRevisionArn": deployment.service_revision_arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster.arn,
        "taskDefinition": td.arn,
        "capacityProviderStrategy": list(strategy) or None,
        "launchType": None if strategy else revision.get("launchType", service.launch_type),
        "platformVersion": PLATFORM_VERSION,
        "platformFamily": "Linux",
        "loadBalancers": list(revision.get("loadBalancers", service.load_balancers)),
        "serviceRegistries": list(revision.get("serviceRegistries", service.service_registries)),
        "networkConfiguration": revision.get("networkConfiguration", service.network_configuration) or None,
        "serviceConnectConfiguration": revision.get(
            "serviceConnectConfiguration", service.service_connect_configuration) or None,
        "containerImages": [{"containerName": c["name"], "image": c["image"]} for c in td.container_definitions],
        "guardDutyEnabled": False,
        "createdAt": epoch(deployment.created_at),
    })


# --- finding them ----------------------------------------------------------------------------


def _parse(ctx, arn, kind):
    """(cluster, service, id) of a service-deployment or service-revision ARN of the account, or None."""
    match = _ARN_RE.fullmatch(arn)
    if not match or match.group(1) != ctx.account.account_id or match.group(2) != kind or not in_region(arn):
        return None
    parts = match.group(3).split("/")
    return tuple(parts) if len(parts) == 3 and all(parts) else None


def _rows(ctx):
    """The account's service deployments here (an EXTERNAL service's rows are task sets, not deployments)."""
    return Deployment.objects.filter(service__account=ctx.account, service__cluster__region=region()).exclude(
        service__deployment_controller="EXTERNAL").select_related(
        "service__account", "service__cluster__account", "task_definition__account", "rollback_of")


def find_service_deployment(ctx, arn):
    """The service deployment an ARN names (never a rollback's own row), or None."""
    parsed = _parse(ctx, arn, "service-deployment")
    if parsed is None:
        return None
    cluster, name, number = parsed
    return _rows(ctx).filter(service__cluster__name=cluster, service__name=name, deployment_id=f"ecs-svc/{number}",
                             rollback_of=None).first()


def find_service_revision(ctx, arn):
    """The deployment that made the service revision an ARN names (the first to deploy it), or None."""
    parsed = _parse(ctx, arn, "service-revision")
    if parsed is None:
        return None
    cluster, name, number = parsed
    rows = _rows(ctx).filter(service__cluster__name=cluster, service__name=name).order_by("pk")
    return rows.filter(revision_id=number).first() or rows.filter(revision_id="", deployment_id=f"ecs-svc/{number}").first()


def _timestamp(value, what):
    """A createdAt bound (epoch seconds or ISO 8601) as an aware datetime."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise EcsError("InvalidParameterException", f"createdAt.{what} is not a timestamp.") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)
    try:
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise EcsError("InvalidParameterException", f"createdAt.{what} is out of range.") from None


# --- the operations --------------------------------------------------------------------------


@operation("ListServiceDeployments")
def list_service_deployments(ctx, params):
    """A service's deployments, newest first, by status and creation time (20 a page by default)."""
    from orchestrator.frontend.services import _find_service

    cluster = _cluster_of(ctx, params, params["service"], "service")
    service = _find_service(ctx, cluster, params["service"])
    if service is None:
        raise EcsError("ServiceNotFoundException", "Service not found.")
    rows = _rows(ctx).filter(service=service, rollback_of=None).order_by("-created_at", "-pk")
    created = params.get("createdAt", {})
    if "after" in created:
        rows = rows.filter(created_at__gte=_timestamp(created["after"], "after"))
    if "before" in created:
        rows = rows.filter(created_at__lte=_timestamp(created["before"], "before"))
    max_results = params.get("maxResults", 20)
    if not 1 <= max_results <= 100:
        raise EcsError("InvalidParameterException", "maxResults must be between 1 and 100.")
    wanted = set(params.get("status", []))
    briefs = [brief_shape(d) for d in rows]
    if wanted:
        briefs = [b for b in briefs if b["status"] in wanted]
    offset = _decode_token(params.get("nextToken"))
    response = {"serviceDeployments": briefs[offset:offset + max_results]}
    if len(briefs) > offset + max_results:
        response["nextToken"] = _encode_token(offset + max_results)
    return response


def _describe(ctx, arns, what, find, shape):
    """(shaped objects, MISSING failures) of up to 20 ARNs."""
    if not 1 <= len(arns) <= MAX_DESCRIBED:
        raise EcsError("InvalidParameterException", f"{what} must list between 1 and {MAX_DESCRIBED} ARNs.")
    found, failures = [], []
    for arn in arns:
        deployment = find(ctx, arn)
        if deployment is None:
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(shape(deployment))
    return found, failures


@operation("DescribeServiceDeployments")
def describe_service_deployments(ctx, params):
    """Service deployments by ARN (up to 20); unknown ones are MISSING failures."""
    found, failures = _describe(ctx, params["serviceDeploymentArns"], "serviceDeploymentArns",
                                find_service_deployment, service_deployment_shape)
    return {"serviceDeployments": found, "failures": failures}


@operation("DescribeServiceRevisions")
def describe_service_revisions(ctx, params):
    """Service revisions by ARN (up to 20); unknown ones are MISSING failures."""
    found, failures = _describe(ctx, params["serviceRevisionArns"], "serviceRevisionArns",
                                find_service_revision, service_revision_shape)
    return {"serviceRevisions": found, "failures": failures}


@operation("StopServiceDeployment")
def stop_service_deployment(ctx, params):
    """Ask for an ongoing service deployment to roll back to the previous service revision; the
    cluster manager fails it and rolls back (even without the circuit breaker's rollback option)."""
    arn = params["serviceDeploymentArn"]
    deployment = find_service_deployment(ctx, arn)
    if deployment is None:
        raise EcsError("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
    stop_type = params.get("stopType", "ROLLBACK")
    if stop_type not in STOP_TYPES:
        raise EcsError("InvalidParameterException",
                       f"stopType {stop_type} applies to blue/green deployments, which Fargate Lab does not run; "
                       "the valid value is ROLLBACK.")
    state, _ = status(deployment, _rollback(deployment))
    if state in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"):
        return {"serviceDeploymentArn": deployment.service_deployment_arn}  # it goes on rolling back
    if state != "IN_PROGRESS":
        raise EcsError("ConflictException",
                       f"The service deployment is {state}: only a PENDING or IN_PROGRESS service deployment "
                       "can be stopped.")
    previous = deployment.service.deployments.filter(rollout_state=Deployment.COMPLETED).exclude(pk=deployment.pk)
    if not previous.exists():
        raise EcsError("InvalidParameterException",
                       "The service has no earlier service revision that completed a deployment to roll back to.")
    now = timezone.now()
    changed = Deployment.objects.filter(
        pk=deployment.pk, status=Deployment.PRIMARY, rollout_state=Deployment.IN_PROGRESS, stop_requested="",
    ).update(stop_requested=stop_type, stopped_at=now, updated_at=now)
    if changed:
        bus.publish("service", deployment.service_id)
    return {"serviceDeploymentArn": deployment.service_deployment_arn}


@operation("ContinueServiceDeployment")
def continue_service_deployment(ctx, params):
    """Refused for every deployment: only a lifecycle hook pauses one, and the lab's ROLLING
    deployments have none (CreateService and UpdateService refuse lifecycleHooks)."""
    deployment = find_service_deployment(ctx, params["serviceDeploymentArn"])
    if deployment is None:
        raise EcsError("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
    raise EcsError(
        "InvalidParameterException",
        f"The service deployment is not paused at lifecycle hook {params['hookId'][:64]}: Fargate Lab's "
        "deployments use the ROLLING strategy, which has no lifecycle hooks to continue.",
    )
