"""ECS Express Mode services: Create/Describe/Update/DeleteExpressGatewayService.

An Express service is a Fargate service whose load balancer, target group, listener and scaling
ECS provisions by itself. The lab builds them with its own operations, in the caller's account
and region, so each shows on the dashboard and in the other APIs like one the caller made: the
article's five steps, done for you.

1. RegisterTaskDefinition: family and container "main" from ``primaryContainer`` (awsvpc,
   FARGATE, ``cpu``/``memory``, default 1024/2048 as on ECS; container port 80 unless given).
2. CreateTargetGroup (ip targets, HTTP, ``healthCheckPath``, default "/") and
   CreateLoadBalancer, both named ``express-<hash of the service ARN>``.
3. CreateListener on a free port of the lab's listen address (every lab load balancer shares
   one address, so each listener needs its own port): the ingress path's endpoint.
4. CreateService (FARGATE, the target group, ``minTaskCount`` tasks, default 1).
5. With ``scalingTarget``: RegisterScalableTarget and a target tracking policy on the service's
   average CPU or memory.

The service's first event names each part, so its dashboard page shows what Express Mode built.

Update registers a new revision and rolls a new deployment (image, command, cpu, memory, roles),
retunes the health check and the scaling; Delete deletes the service (force) and the listener,
load balancer, target group and scalable target Create made. What the lab cannot honour is
refused naming the parameter: the REQUEST_COUNT_PER_TARGET metric (the lab's scaling measures
CPU and memory) and a change of containerPort (the target group's port).
"""
import hashlib
import re
import secrets
import socket

from django.utils import timezone

from orchestrator import network
from orchestrator.elbv2 import operations as elb
from orchestrator.elbv2.protocol import ElbError
from orchestrator.frontend import EcsError, network_configuration, shapes
from orchestrator.frontend.json_service import ServiceError
from orchestrator.frontend.operations import OPERATIONS, _check_tags, _get_cluster, _parse_arn, operation
from orchestrator.models import Cluster, Deployment, ExpressGatewayService, Listener, Service, region

CONTAINER = "main"
DEFAULTS = {"cpu": "1024", "memory": "2048", "healthCheckPath": "/", "containerPort": 80}
METRICS = {"AVERAGE_CPU": "ECSServiceAverageCPUUtilization", "AVERAGE_MEMORY": "ECSServiceAverageMemoryUtilization"}
_NAME_RE = re.compile(r"[^A-Za-z0-9_-]+")
_ROLE_RE = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,1900}")


def _invalid(message):
    """ECS's InvalidParameterException with ``message``."""
    return EcsError("InvalidParameterException", message)


def _composed(call, *args):
    """Run one of the lab's ELBv2 or Application Auto Scaling operations; its error as ECS's."""
    try:
        return call(*args)
    except ElbError as exc:
        raise _invalid(f"The load balancer part could not be built: {exc.message}") from None
    except ServiceError as exc:
        raise _invalid(f"The scaling could not be set: {exc}") from None


def _autoscaling():
    """The Application Auto Scaling operations (imported late: they import the ECS models' users)."""
    from orchestrator.frontend.application_autoscaling import operations as scaling

    return scaling


def _check_scaling(target):
    """The scaling target, defaults filled in; refusals name the parameter."""
    if target is None:
        return None
    low, high = target.get("minTaskCount", 1), target.get("maxTaskCount", target.get("minTaskCount", 1))
    if not 0 <= low <= high:
        raise _invalid("scalingTarget.minTaskCount must be 0 or more and at most scalingTarget.maxTaskCount.")
    metric = target.get("autoScalingMetric", "AVERAGE_CPU")
    if metric not in METRICS:
        raise EcsError("UnsupportedFeatureException",
                       f"scalingTarget.autoScalingMetric {metric[:64]} is not supported by Fargate Lab: its scaling "
                       "measures CPU and memory (AVERAGE_CPU or AVERAGE_MEMORY).")
    value = target.get("autoScalingTargetValue", 60)
    if not 1 <= value <= 100:
        raise _invalid("scalingTarget.autoScalingTargetValue must be between 1 and 100 (percent).")
    return {"minTaskCount": low, "maxTaskCount": high, "autoScalingMetric": metric,
            "autoScalingTargetValue": value}


def _container_definition(config):
    """The task definition's container from ``primaryContainer``."""
    container = config["primaryContainer"]
    definition = {"name": CONTAINER, "image": container["image"], "essential": True,
                  "portMappings": [{"containerPort": container["containerPort"], "protocol": "tcp"}]}
    for key in ("command", "environment", "secrets"):
        if container.get(key):
            definition[key] = container[key]
    if container.get("repositoryCredentials"):
        definition["repositoryCredentials"] = container["repositoryCredentials"]
    logs = container.get("awsLogsConfiguration")
    if logs:
        definition["logConfiguration"] = {"logDriver": "awslogs", "options": {
            "awslogs-group": logs["logGroup"], "awslogs-stream-prefix": logs["logStreamPrefix"],
            "awslogs-region": region(), "awslogs-create-group": "true"}}
    return definition


def _register(ctx, name, config):
    """RegisterTaskDefinition for the configuration; the new revision's ARN."""
    params = {"family": name, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
              "cpu": config["cpu"], "memory": config["memory"], "executionRoleArn": config["executionRoleArn"],
              "containerDefinitions": [_container_definition(config)]}
    if config.get("taskRoleArn"):
        params["taskRoleArn"] = config["taskRoleArn"]
    return OPERATIONS["RegisterTaskDefinition"](ctx, params)["taskDefinition"]["taskDefinitionArn"]


def _network(config):
    """The service's awsvpc network configuration from the Express one (the default subnet unless given)."""
    given = config.get("networkConfiguration") or {}
    awsvpc = {"subnets": given.get("subnets") or [network_configuration.DEFAULT_SUBNET], "assignPublicIp": "ENABLED"}
    if given.get("securityGroups"):
        awsvpc["securityGroups"] = given["securityGroups"]
    return {"awsvpcConfiguration": awsvpc}


def _scale(ctx, service, scaling):
    """RegisterScalableTarget and its target tracking policy (or deregister when ``scaling`` is None)."""
    ops = _autoscaling()
    resource = f"service/{service.cluster.name}/{service.name}"
    scope = {"ServiceNamespace": "ecs", "ResourceId": resource, "ScalableDimension": "ecs:service:DesiredCount"}
    if scaling is None:
        if ops._targets(ctx.account).filter(resource_id=resource).exists():
            ops.deregister_scalable_target(ctx.account, scope, ctx.caller)
        return
    _composed(ops.register_scalable_target, ctx.account,
              {**scope, "MinCapacity": scaling["minTaskCount"], "MaxCapacity": scaling["maxTaskCount"]}, ctx.caller)
    _composed(ops.put_scaling_policy, ctx.account, {
        **scope, "PolicyName": "express-target-tracking", "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": scaling["autoScalingTargetValue"],
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRICS[scaling["autoScalingMetric"]]}}},
        ctx.caller)


def _free_port():
    """A port of the listen address no listener of the lab holds and the host can bind now."""
    for _ in range(20):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind((elb.listen_address(), 0))
            port = probe.getsockname()[1]
        finally:
            probe.close()
        if not Listener.objects.filter(port=port).exists():
            return port
    raise EcsError("ServerException", "No free port for the Express service's listener.")


def _endpoint_of(port):
    """The URL of the lab's listener on ``port``, at the address students reach listeners at."""
    return f"http://{network.url_host(network.advertised_host(elb.listen_address()))}:{port}/"


def _endpoint(express):
    """The ingress path's URL: the listener's port on the lab's listen address."""
    return _endpoint_of(express.port)


def _configuration_shape(express):
    """The model's ExpressGatewayServiceConfiguration of the active configuration."""
    config = express.configuration
    shape = {key: value for key, value in config.items() if key not in ("createdAt",)}
    shape["ingressPaths"] = [{"accessType": "PUBLIC", "endpoint": _endpoint(express)}]
    shape["createdAt"] = shapes.epoch(express.configured_at)
    return shape


def _status(service):
    """The model's ExpressGatewayServiceStatus of the ECS service."""
    return {"statusCode": service.status if service.status in (Service.ACTIVE, Service.DRAINING) else "INACTIVE"}


def _primary(service):
    """The id of the service's PRIMARY deployment, or None."""
    deployment = service.deployments.filter(status=Deployment.PRIMARY).order_by("-pk").first()
    return deployment.deployment_id if deployment else None


def _shape(express, tags=True):
    """The model's ECSExpressGatewayService (its tags when ``tags``)."""
    service = express.service
    shape = {
        "cluster": service.cluster.arn, "serviceName": service.name, "serviceArn": service.arn,
        "infrastructureRoleArn": express.infrastructure_role_arn, "status": _status(service),
        "activeConfigurations": [_configuration_shape(express)] if service.status != Service.INACTIVE else [],
        "createdAt": shapes.epoch(service.created_at), "updatedAt": shapes.epoch(service.updated_at),
    }
    if _primary(service):
        shape["currentDeployment"] = _primary(service)
    if tags and service.tags:
        shape["tags"] = service.tags
    return shape


def _configuration(params, earlier=None):
    """The configuration a request asks for, over ``earlier``'s (Update) or the defaults (Create)."""
    config = dict(earlier or {"cpu": DEFAULTS["cpu"], "memory": DEFAULTS["memory"],
                              "healthCheckPath": DEFAULTS["healthCheckPath"]})
    for key in ("executionRoleArn", "taskRoleArn", "cpu", "memory", "healthCheckPath"):
        if key in params:
            config[key] = params[key]
    for key in ("executionRoleArn", "taskRoleArn"):
        if key in config and not _ROLE_RE.fullmatch(config[key]):
            raise _invalid(f"{key} must be an IAM role ARN (arn:aws:iam::<account>:role/<name>).")
    if not config["healthCheckPath"].startswith("/"):
        raise _invalid("healthCheckPath must start with '/'.")
    if "primaryContainer" in params:
        container = dict(params["primaryContainer"])
        container.setdefault("containerPort", (earlier or {}).get("primaryContainer", {}).get(
            "containerPort", DEFAULTS["containerPort"]))
        if not 1 <= container["containerPort"] <= 65535:
            raise _invalid("primaryContainer.containerPort must be between 1 and 65535.")
        if earlier and container["containerPort"] != earlier["primaryContainer"]["containerPort"]:
            raise EcsError("UnsupportedFeatureException",
                           "primaryContainer.containerPort cannot change in Fargate Lab: the target group forwards "
                           "to the port the service was created with.")
        config["primaryContainer"] = container
    if "networkConfiguration" in params:
        config["networkConfiguration"] = params["networkConfiguration"]
    if "scalingTarget" in params:
        config["scalingTarget"] = _check_scaling(params["scalingTarget"])
    return config


def _find(ctx, arn, missing="ServiceNotFoundException"):
    """The Express service ``arn`` names in the caller's account and region, else ``missing``."""
    rest = _parse_arn(arn, "service", ctx.account) if isinstance(arn, str) else None
    express = None
    if rest and "/" in rest:
        cluster_name, name = rest.split("/", 1)
        express = (ExpressGatewayService.objects.select_related("service__cluster__account", "service__account")
                   .filter(service__account=ctx.account, service__cluster__region=region(),
                           service__cluster__name=cluster_name, service__name=name).order_by("-pk").first())
    if express is None:
        raise EcsError(missing, "The Express service was not found." if missing != "ServiceNotFoundException"
                       else "Service not found.")
    return express


def _live(ctx, params):
    """The ACTIVE Express service a request names, else ServiceNotFound / ServiceNotActive."""
    express = _find(ctx, params["serviceArn"])
    if express.service.status != Service.ACTIVE:
        raise EcsError("ServiceNotActiveException", "Service was not ACTIVE.")
    return express


def _service_name(params):
    """The service name asked for, else the image's name and a short random suffix."""
    if params.get("serviceName"):
        return params["serviceName"]
    image = params["primaryContainer"]["image"].rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    return (_NAME_RE.sub("-", image)[:200] or "express") + "-" + secrets.token_hex(3)


@operation("CreateExpressGatewayService")
def create_express_gateway_service(ctx, params):
    """Build the task definition, target group, load balancer, listener, service and scaling."""
    config = _configuration(params)
    role = params["infrastructureRoleArn"]
    if not _ROLE_RE.fullmatch(role):
        raise _invalid("infrastructureRoleArn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>).")
    cluster_name = params.get("cluster") or "default"
    if cluster_name == "default" and not Cluster.objects.filter(
            account=ctx.account, region=region(), name="default", status=Cluster.ACTIVE).exists():
        OPERATIONS["CreateCluster"](ctx, {"clusterName": "default"})
    cluster = _get_cluster(ctx, cluster_name)
    name = _service_name(params)
    if Service.objects.filter(cluster=cluster, name=name).exclude(status=Service.INACTIVE).exists():
        raise _invalid(f"A service named {name[:255]} exists in the cluster already.")
    tags = _check_tags(params.get("tags", []))
    part = "express-" + hashlib.sha1(f"{cluster.arn}/{name}/{timezone.now().isoformat()}".encode()).hexdigest()[:12]
    port = config["primaryContainer"]["containerPort"]
    td_arn = _register(ctx, name, config)
    tg = _composed(elb.create_target_group, ctx.account, {
        "Name": part, "Protocol": "HTTP", "Port": port, "TargetType": "ip", "VpcId": elb.VPC_ID,
        "HealthCheckPath": config["healthCheckPath"]}, ctx.caller)["TargetGroups"][0]
    lb = _composed(elb.create_load_balancer, ctx.account, {"Name": part}, ctx.caller)["LoadBalancers"][0]
    listen = _free_port()
    _composed(elb.create_listener, ctx.account, {
        "LoadBalancerArn": lb["LoadBalancerArn"], "Protocol": "HTTP", "Port": listen,
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]}, ctx.caller)
    scaling = config.get("scalingTarget")
    service_params = {
        "cluster": cluster.name, "serviceName": name, "taskDefinition": td_arn, "launchType": "FARGATE",
        "desiredCount": scaling["minTaskCount"] if scaling else 1, "networkConfiguration": _network(config),
        "loadBalancers": [{"targetGroupArn": tg["TargetGroupArn"], "containerName": CONTAINER, "containerPort": port}],
    }
    if tags:
        service_params["tags"] = tags
    OPERATIONS["CreateService"](ctx, service_params)
    service = Service.objects.select_related("cluster__account", "account").get(
        cluster=cluster, name=name, status=Service.ACTIVE)
    _scale(ctx, service, scaling)
    service.add_event(
        f"was built by Express Mode: task definition {td_arn.rsplit('/', 1)[-1]}, target group and load balancer "
        f"{part}, listener {_endpoint_of(listen)}"
        + (f", scaling {scaling['minTaskCount']}-{scaling['maxTaskCount']} tasks on "
           f"{METRICS[scaling['autoScalingMetric']]} {scaling['autoScalingTargetValue']}" if scaling else "") + ".",
        trace_id=ctx.trace_id)
    express = ExpressGatewayService.objects.create(
        service=service, infrastructure_role_arn=role, configuration=config,
        load_balancer_id=elb.get_load_balancer(ctx.account, lb["LoadBalancerArn"]).pk,
        target_group_id=elb.get_target_group(ctx.account, tg["TargetGroupArn"]).pk, port=listen,
    )
    return {"service": _shape(express)}


@operation("DescribeExpressGatewayService")
def describe_express_gateway_service(ctx, params):
    """The Express service and its active configuration (tags with include=["TAGS"])."""
    express = _find(ctx, params["serviceArn"], missing="ResourceNotFoundException")
    return {"service": _shape(express, tags="TAGS" in (params.get("include") or []))}


@operation("UpdateExpressGatewayService")
def update_express_gateway_service(ctx, params):
    """A new configuration: a new revision and deployment, the health check and scaling retuned."""
    express = _live(ctx, params)
    service = express.service
    config = _configuration(params, express.configuration)
    changes = {}
    if any(key in params for key in ("primaryContainer", "cpu", "memory", "executionRoleArn", "taskRoleArn")):
        changes["taskDefinition"] = _register(ctx, service.name, config)
    if "networkConfiguration" in params:
        changes["networkConfiguration"] = _network(config)
    if "scalingTarget" in params:
        scaling = config["scalingTarget"]
        low, high = (scaling["minTaskCount"], scaling["maxTaskCount"]) if scaling else (1, 1)
        if not low <= service.desired_count <= high:
            changes["desiredCount"] = min(max(service.desired_count, low), high)
    if changes:
        OPERATIONS["UpdateService"](ctx, {"cluster": service.cluster.name, "service": service.name, **changes})
    if "healthCheckPath" in params and express.target_group is not None:
        _composed(elb.modify_target_group, ctx.account, {
            "TargetGroupArn": express.target_group.arn, "HealthCheckPath": config["healthCheckPath"]}, ctx.caller)
    if "scalingTarget" in params:
        _scale(ctx, service, config["scalingTarget"])
    express.configuration, express.configured_at = config, timezone.now()
    express.save(update_fields=("configuration", "configured_at"))
    express = _find(ctx, params["serviceArn"])
    shape = _shape(express, tags=False)
    return {"service": {
        "serviceArn": shape["serviceArn"], "cluster": shape["cluster"], "serviceName": shape["serviceName"],
        "status": shape["status"], "targetConfiguration": shape["activeConfigurations"][0],
        "createdAt": shape["createdAt"], "updatedAt": shape["updatedAt"]}}


@operation("DeleteExpressGatewayService")
def delete_express_gateway_service(ctx, params):
    """Delete the service (its tasks drain and stop) and the parts Create built for it."""
    express = _live(ctx, params)
    service = express.service
    _scale(ctx, service, None)
    OPERATIONS["DeleteService"](ctx, {"cluster": service.cluster.name, "service": service.name, "force": True})
    if express.load_balancer is not None:  # its listener goes with it
        _composed(elb.delete_load_balancer, ctx.account, {"LoadBalancerArn": express.load_balancer.arn}, ctx.caller)
    if express.target_group is not None:
        _composed(elb.delete_target_group, ctx.account, {"TargetGroupArn": express.target_group.arn}, ctx.caller)
    express = _find(ctx, params["serviceArn"])
    return {"service": _shape(express)}
