"""Serializers from state-database rows to botocore-shaped response dicts.

The API and the dashboard both use these, so the dashboard shows exactly what DescribeTasks
or DescribeServices would return. Timestamps are epoch seconds (floats), as AWS JSON 1.1 sends.
"""
import hashlib
import uuid

from django.db.models import Prefetch, prefetch_related_objects

from orchestrator.models import Deployment, ServiceEvent, Task, region

PLATFORM_VERSION = "1.4.0"
AVAILABILITY_ZONE_SUFFIX = "a"
PENDING_STATES = (Task.PROVISIONING, Task.PENDING, Task.ACTIVATING)
_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def epoch(value):
    """A datetime as epoch seconds, or None."""
    return value.timestamp() if value else None


def _compact(data):
    """Drop members whose value is None, as ECS omits unset members."""
    return {key: value for key, value in data.items() if value is not None}


def availability_zone(region_name=None):
    """The one availability zone the lab's tasks of a region (by default the call's) run in."""
    return (region_name or region()) + AVAILABILITY_ZONE_SUFFIX


def _cluster_statistics(c, data):
    """DescribeClusters' STATISTICS: every task and service is Fargate's, none EC2's (as ECS spells them)."""
    counts = {
        "runningEC2TasksCount": 0, "runningFargateTasksCount": data["runningTasksCount"],
        "pendingEC2TasksCount": 0, "pendingFargateTasksCount": data["pendingTasksCount"],
        "activeEC2ServiceCount": 0, "activeFargateServiceCount": data["activeServicesCount"],
        "drainingEC2ServiceCount": 0, "drainingFargateServiceCount": c.services.filter(status="DRAINING").count(),
    }
    return [{"name": name, "value": str(value)} for name, value in counts.items()]


def cluster_shape(c, include=()):
    """A Cluster as DescribeClusters returns it; ``include`` may name TAGS, SETTINGS, CONFIGURATIONS,
    STATISTICS and ATTACHMENTS."""
    tasks = c.tasks.exclude(last_status=Task.STOPPED)
    data = {
        "clusterArn": c.arn,
        "clusterName": c.name,
        "status": c.status,
        "registeredContainerInstancesCount": 0,
        "runningTasksCount": tasks.filter(last_status=Task.RUNNING).count(),
        "pendingTasksCount": tasks.filter(last_status__in=PENDING_STATES).count(),
        "activeServicesCount": c.services.filter(status="ACTIVE").count(),
        "capacityProviders": list(c.capacity_providers),
        "defaultCapacityProviderStrategy": list(c.default_capacity_provider_strategy),
    }
    if "STATISTICS" in include:
        data["statistics"] = _cluster_statistics(c, data)
    if "ATTACHMENTS" in include:
        # FARGATE and FARGATE_SPOT attach no Auto Scaling group to a cluster, as on ECS.
        data["attachments"] = []
        if c.capacity_providers:
            data["attachmentsStatus"] = "UPDATE_COMPLETE"
    if c.service_connect_defaults:
        data["serviceConnectDefaults"] = dict(c.service_connect_defaults)
    if "TAGS" in include:
        data["tags"] = list(c.tags)
    if "SETTINGS" in include:
        data["settings"] = list(c.settings) or [{"name": "containerInsights", "value": "disabled"}]
    if "CONFIGURATIONS" in include and c.configuration:
        data["configuration"] = dict(c.configuration)
    return data


def task_definition_shape(td):
    """A TaskDefinition as DescribeTaskDefinition returns it (the stored, normalized body)."""
    data = dict(td.body)
    data.update(
        taskDefinitionArn=td.arn,
        family=td.family,
        revision=td.revision,
        status=td.status,
        registeredAt=epoch(td.registered_at),
    )
    if td.deregistered_at:
        data["deregisteredAt"] = epoch(td.deregistered_at)
    return data


def _uuid5_hex(name):
    """``uuid.uuid5(uuid.NAMESPACE_URL, name).hex``, without building a UUID object: DescribeTasks
    of 100 tasks derives 300 such ids, and ``UUID.__init__`` was a quarter of its time."""
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return digest.hex()


def _uuid5(name):
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, name))`` (see ``_uuid5_hex``)."""
    h = _uuid5_hex(name)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _eni_hex(task):
    """The hex digest the task's ENI ids derive from, computed once per task object."""
    digest = getattr(task, "_eni_hex", None)
    if digest is None:
        digest = task._eni_hex = _uuid5_hex(f"eni/{task.task_id}")
    return digest


def _container_shape(task, container):
    """One container of a task as DescribeTasks lists it."""
    container_id = _uuid5(f"{task.task_id}/{container.name}")
    data = {
        "containerArn": f"arn:aws:ecs:{task.cluster.region}:{task.account.account_id}:container/{task.cluster.name}/{task.task_id}/{container_id}",
        "taskArn": task.arn,
        "name": container.name,
        "image": container.image,
        "runtimeId": container.docker_id or None,
        "lastStatus": container.last_status,
        "exitCode": container.exit_code,
        "reason": container.reason or None,
        "networkBindings": list(container.network_bindings),
        "networkInterfaces": (
            [{"attachmentId": _attachment_id(task), "privateIpv4Address": task.private_ip}] if task.private_ip else []
        ),
        "healthStatus": container.health_status,
        "cpu": str(container.cpu),
        "memory": str(container.memory) if container.memory else None,
    }
    if task.enable_execute_command:
        data["managedAgents"] = [exec_agent_shape(container)]
    return _compact(data)


def exec_agent_status(container):
    """The ECS Exec agent's lastStatus in a container: it runs while the container runs."""
    if container.last_status in ("RUNNING", "STOPPED"):
        return container.last_status
    return "PENDING"


def exec_agent_shape(container):
    """The container's managed agent ExecuteCommandAgent (ECS Exec), as DescribeTasks shows it."""
    return _compact({"name": "ExecuteCommandAgent", "lastStatus": exec_agent_status(container),
                     "lastStartedAt": epoch(container.started_at)})


def _attachment_id(task):
    """A stable id for the task's ENI attachment."""
    h = _eni_hex(task)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _eni_attachment(task):
    """The awsvpc ENI attachment: one IP per task (the pod IP), in the subnet the task asked for."""
    digest = _eni_hex(task)
    subnets = (task.network_configuration or {}).get("awsvpcConfiguration", {}).get("subnets") or ["subnet-fargatelab"]
    # A locally administered unicast MAC (02:…), stable per task as an ENI's is.
    mac = ":".join(["02"] + [digest[i:i + 2] for i in range(17, 27, 2)])
    details = [
        {"name": "subnetId", "value": subnets[0]},
        {"name": "networkInterfaceId", "value": f"eni-{digest[:17]}"},
        {"name": "macAddress", "value": mac},
    ]
    if task.private_ip:
        where = task.cluster.region
        domain = "ec2.internal" if where == "us-east-1" else f"{where}.compute.internal"
        details.append({"name": "privateDnsName", "value": f"ip-{task.private_ip.replace('.', '-')}.{domain}"})
        details.append({"name": "privateIPv4Address", "value": task.private_ip})
    status = "ATTACHED" if task.private_ip else ("DELETED" if task.last_status == Task.STOPPED else "PRECREATED")
    return {"id": _attachment_id(task), "type": "ElasticNetworkInterface", "status": status, "details": details}


def _containers(task):
    """The task's containers: those its finder listed (``listed_containers``), else queried."""
    listed = getattr(task, "listed_containers", None)
    return task.containers.all() if listed is None else listed


def task_shape(t, include=()):
    """A Task as DescribeTasks returns it; ``include`` may name TAGS."""
    overrides = {"containerOverrides": [], "inferenceAcceleratorOverrides": []}
    overrides.update(t.overrides or {})
    data = {
        "taskArn": t.arn,
        "clusterArn": t.cluster.arn,
        "taskDefinitionArn": t.task_definition.arn,
        "attachments": [_eni_attachment(t)],
        "availabilityZone": availability_zone(t.cluster.region),
        "containers": [_container_shape(t, c) for c in _containers(t)],
        "cpu": str(t.cpu),
        "memory": str(t.memory),
        "createdAt": epoch(t.created_at),
        "desiredStatus": t.desired_status,
        "lastStatus": t.last_status,
        "enableExecuteCommand": t.enable_execute_command,
        "group": t.group or None,
        "healthStatus": t.health_status,
        "launchType": t.launch_type,
        "capacityProviderName": t.capacity_provider or None,
        "platformVersion": PLATFORM_VERSION,
        "platformFamily": "Linux",
        "overrides": overrides,
        "startedBy": t.started_by or None,
        "connectivity": "CONNECTED" if t.connectivity_at else None,
        "connectivityAt": epoch(t.connectivity_at),
        "pullStartedAt": epoch(t.pull_started_at),
        "pullStoppedAt": epoch(t.pull_stopped_at),
        "startedAt": epoch(t.started_at),
        "stoppingAt": epoch(t.stopping_at),
        "executionStoppedAt": epoch(t.execution_stopped_at),
        "stoppedAt": epoch(t.stopped_at),
        "stopCode": t.stop_code or None,
        "stoppedReason": t.stopped_reason or None,
        "version": t.version,
        "ephemeralStorage": {"sizeInGiB": 20},
        "fargateEphemeralStorage": {"sizeInGiB": 20},
    }
    if "TAGS" in include:
        data["tags"] = list(t.tags)
    return _compact(data)


def deployment_shape(d):
    """One entry of a service's deployments list."""
    return _compact({
        "id": d.deployment_id,
        "status": d.status,
        "taskDefinition": d.task_definition.arn,
        "desiredCount": d.desired_count,
        "pendingCount": d.pending_count,
        "runningCount": d.running_count,
        "failedTasks": d.failed_tasks,
        "createdAt": epoch(d.created_at),
        "updatedAt": epoch(d.updated_at),
        "launchType": None if d.service.capacity_provider_strategy else d.service.launch_type,
        "capacityProviderStrategy": list(d.service.capacity_provider_strategy) or None,
        "platformVersion": PLATFORM_VERSION,
        "platformFamily": "Linux",
        "networkConfiguration": d.service.network_configuration or None,
        "rolloutState": d.rollout_state,
        "rolloutStateReason": d.rollout_state_reason or None,
        **_service_connect(d.service),
    })


def _service_connect(service):
    """A deployment's serviceConnectConfiguration and serviceConnectResources, if it has them."""
    from orchestrator.frontend import service_registries

    connect = service.service_connect_configuration
    if not connect:
        return {}
    return {"serviceConnectConfiguration": dict(connect),
            "serviceConnectResources": service_registries.connect_resources(service) or None}


def current_service_deployment(live):
    """(currentServiceDeployment, currentServiceRevisions) of a service from its live deployments:
    the service deployment in charge (a rollback shows as the one it rolls back) and each
    revision with its tasks."""
    primary = next((d for d in live if d.status == "PRIMARY"), None)
    current = (primary.rollback_of or primary).service_deployment_arn if primary is not None else None
    revisions = {}
    for d in live:
        revisions.setdefault(d.revision_number, {
            "arn": d.service_revision_arn, "requestedTaskCount": d.desired_count,
            "runningTaskCount": d.running_count, "pendingTaskCount": d.pending_count,
        })
    return current, list(revisions.values())


MAX_SERVICE_EVENTS = 100


def prefetch_service_shapes(services, account=None):
    """Fetch what ``service_shape`` shows of each of ``services`` (their live deployments and
    newest events) in two queries for all of them, instead of a few for each. With ``account``
    (the caller's, in hand), a task definition of that account is given it rather than joined."""
    deployments = Deployment.objects.exclude(status="INACTIVE")
    deployments = deployments.select_related("task_definition" if account else "task_definition__account")
    prefetch_related_objects(
        services,
        Prefetch("deployments", deployments, to_attr="live_deployments"),
        Prefetch("events", ServiceEvent.objects.all()[:MAX_SERVICE_EVENTS], to_attr="newest_events"),
    )
    if account is not None:
        for service in services:
            for deployment in service.live_deployments:
                if deployment.task_definition.account_id == account.pk:
                    deployment.task_definition.account = account


def service_shape(s, include=()):
    """A Service as DescribeServices returns it: deployments and the newest 100 events (those
    ``prefetch_service_shapes`` fetched, if it did)."""
    live = getattr(s, "live_deployments", None)
    if live is None:
        live = list(s.deployments.exclude(status="INACTIVE"))
    events = getattr(s, "newest_events", None)
    if events is None:
        events = s.events.all()[:MAX_SERVICE_EVENTS]
    external = s.deployment_controller == "EXTERNAL"
    task_sets = [d for d in live if external]  # an EXTERNAL service's live rows are its task sets
    live = [] if external else live
    current, revisions = current_service_deployment(live)
    data = {
        "serviceArn": s.arn,
        "serviceName": s.name,
        "clusterArn": s.cluster.arn,
        "loadBalancers": list(s.load_balancers),
        "serviceRegistries": list(s.service_registries),
        "status": s.status,
        "desiredCount": s.desired_count,
        "runningCount": s.running_count,
        "pendingCount": s.pending_count,
        "launchType": None if s.capacity_provider_strategy else s.launch_type,
        "capacityProviderStrategy": list(s.capacity_provider_strategy) or None,
        "platformVersion": "LATEST",
        "platformFamily": "Linux",
        "taskDefinition": s.task_definition.arn,
        "deploymentConfiguration": dict(s.deployment_configuration),
        "deployments": [deployment_shape(d) for d in live],
        "currentServiceDeployment": current,
        "currentServiceRevisions": revisions,
        "events": [
            {"id": e.event_id, "createdAt": epoch(e.created_at), "message": e.message} for e in events
        ],
        "createdAt": epoch(s.created_at),
        "placementConstraints": list(s.placement_constraints),
        "placementStrategy": list(s.placement_strategy),
        "networkConfiguration": s.network_configuration or None,
        "healthCheckGracePeriodSeconds": s.health_check_grace_period,
        "schedulingStrategy": s.scheduling_strategy,
        "deploymentController": {"type": s.deployment_controller},
        "createdBy": s.created_by or None,
        "enableECSManagedTags": False,
        "propagateTags": "NONE",
        "enableExecuteCommand": s.enable_execute_command,
    }
    if external:  # an EXTERNAL service's tasks are its task sets' (and it has no deployments)
        from orchestrator.frontend.task_sets import task_set_shape

        data["taskSets"] = [task_set_shape(t) for t in task_sets]
    if "TAGS" in include:
        data["tags"] = list(s.tags)
    return _compact(data)
