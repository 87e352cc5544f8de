"""A believable lab state without Docker, for the map's screenshot and the dashboard benchmark.

Clusters, task definitions and services are made through the ECS frontend; tasks, instances
and activities are written as the control plane would write them.
"""
import random
from datetime import timedelta

from django.utils import timezone

from orchestrator import activity
from orchestrator.frontend import call
from orchestrator.frontend.network_configuration import DEFAULT_SUBNET
from orchestrator.models import (
    Account, ContainerInstance, Service, ServiceEvent, Task, TaskContainer,
)

STATUSES = [Task.RUNNING] * 8 + [Task.PENDING, Task.ACTIVATING, Task.PROVISIONING, Task.STOPPED]


def populate(tasks=40, instances=4, seed=7):
    """Write a lab with ``tasks`` tasks over two services and ``instances`` instances; returns the services."""
    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "demo"})
    for family, port in (("web", 80), ("worker", None)):
        container = {"name": family, "image": "fargate-lab/demo:latest", "essential": True}
        if port:
            container["portMappings"] = [{"containerPort": port, "protocol": "tcp"}]
        call(account, "RegisterTaskDefinition", {
            "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "256", "memory": "512", "containerDefinitions": [container],
        })
    fleet = [
        ContainerInstance.objects.get_or_create(
            name=f"fleet-{i}",
            defaults={"cpu_registered": 4096, "memory_registered": 8192, "agent_connected": True},
        )[0]
        for i in range(1, instances + 1)
    ]
    services = []
    for name in ("web", "worker"):
        call(account, "CreateService", {
            "cluster": "demo", "serviceName": name, "taskDefinition": f"{name}:1", "desiredCount": tasks // 2,
            "launchType": "FARGATE", "networkConfiguration": {"awsvpcConfiguration": {"subnets": [DEFAULT_SUBNET]}},
        })
        services.append(Service.objects.get(name=name, cluster__name="demo"))
    add_tasks(tasks, seed)
    _activities(services, fleet)
    return services


def add_tasks(count, seed=7):
    """Add ``count`` tasks, in turn to the services of ``populate``, with their containers."""
    rng = random.Random(seed)
    account = Account.default()
    services = list(Service.objects.filter(cluster__name="demo", cluster__account=account).order_by("name"))
    fleet = list(ContainerInstance.objects.order_by("name"))
    known = set(Task.objects.values_list("pk", flat=True))
    now = timezone.now()
    rows = []
    for index in range(count):
        service = services[index % 2]
        status = rng.choice(STATUSES)
        started = now - timedelta(seconds=rng.randint(30, 600))
        rows.append(Task(
            account=account, cluster=service.cluster, service=service, task_definition=service.task_definition,
            container_instance=None if status == Task.PROVISIONING else fleet[index % len(fleet)],
            group=f"service:{service.name}", cpu=256, memory=512, last_status=status,
            desired_status=Task.STOPPED if status == Task.STOPPED else Task.RUNNING,
            created_at=started - timedelta(seconds=2), pull_started_at=started - timedelta(seconds=1),
            pull_stopped_at=started - timedelta(seconds=0.5),
            started_at=started if status in (Task.RUNNING, Task.STOPPED) else None,
            stopped_at=now - timedelta(seconds=5) if status == Task.STOPPED else None,
            stop_code="EssentialContainerExited" if status == Task.STOPPED else "",
            stopped_reason="Essential container in task exited" if status == Task.STOPPED else "",
            pending_reason="No Fargate capacity: no instance has 256 CPU units and 512 MiB free"
            if status == Task.PROVISIONING else "",
        ))
    Task.objects.bulk_create(rows, batch_size=500)
    containers = [
        TaskContainer(
            task=task, name=task.task_definition.family, image="fargate-lab/demo:latest",
            last_status="RUNNING" if task.last_status == Task.RUNNING else "PENDING",
            exit_code=137 if task.last_status == Task.STOPPED else None,
            network_bindings=[{"bindIP": "127.0.0.1", "containerPort": 80, "hostPort": 32768 + len(known) + n, "protocol": "tcp"}]
            if task.last_status == Task.RUNNING and task.task_definition.family == "web" else [],
        )
        for n, task in enumerate(Task.objects.exclude(pk__in=known).select_related("task_definition"))
    ]
    TaskContainer.objects.bulk_create(containers, batch_size=500)
    for service in services:
        running = service.tasks.filter(last_status=Task.RUNNING).count()
        pending = service.tasks.exclude(last_status__in=[Task.RUNNING, Task.STOPPED]).count()
        Service.objects.filter(pk=service.pk).update(running_count=running, pending_count=pending)
        ServiceEvent.objects.create(service=service, message=f"(service {service.name}) has started {running} tasks.")


def _activities(services, fleet):
    """What each component did lately, worded as the control plane words it."""
    task = Task.objects.filter(last_status=Task.RUNNING).select_related("account", "cluster").first()
    arn = task.arn if task else ""
    steps = [
        ("frontend", "ListClusters", "ListClusters → 200", "test", 200, 3.1),
        ("frontend", "RegisterTaskDefinition", "RegisterTaskDefinition → 200", "test", 200, 8.4),
        ("frontend", "CreateService", "CreateService → 200", "console:admin", 200, 11.9),
        ("frontend", "RunTask", "RunTask → 400 ClientException: TaskDefinition not found.", "test", 400, 2.2),
        ("frontend", "DescribeServices", "DescribeServices → 200", "test", 200, 4.7),
        ("cluster_manager", "start", f"(service {services[0].name}) has started 2 tasks.", "", None, None),
        ("cluster_manager", "replace", "task stopped (Essential container in task exited); starting a replacement", "", None, None),
        ("cluster_manager", "steady", f"(service {services[1].name}) has reached a steady state.", "", None, None),
        ("capacity_manager", "place", f"{fleet[0].name} has 3840 CPU / 7680 MiB free: most room that fits 256/512", "", None, None),
        ("capacity_manager", "place", f"{fleet[-1].name} has 3584 CPU / 7168 MiB free: most room that fits 256/512", "", None, None),
        ("agent", "pull", "image fargate-lab/demo:latest present, no pull", "", None, None),
        ("agent", "start", "container started; task ACTIVATING → RUNNING", "", None, None),
        ("agent", "died", "container exited with 137: Essential container in task exited", "", None, None),
        ("docker", "create", "fargatelab-lab-… --cpus 0.25 -m 512m", "", None, None),
        ("docker", "start", "container started in 0.21 s", "", None, None),
        ("docker", "kill", "SIGKILL sent", "", None, None),
    ]
    for component, action, message, caller, status, latency in steps:
        activity.record(component, action, arn, message, caller=caller, status_code=status, latency_ms=latency)



def run_task_steps():
    """A RunTask's steps as its components record them: the call, the placement, the container."""
    task = Task.objects.filter(last_status=Task.RUNNING).select_related("account", "cluster").first()
    activity.record("frontend", "RunTask", task.arn, "RunTask → 200", caller="test", status_code=200, latency_ms=6.2)
    activity.record("capacity_manager", "place", task.arn, f"placed task {task.task_id} on fleet-1")
    activity.record("docker", "create", task.arn, f"created container web of task {task.task_id[:8]}")
