"""Rolling deployments, the circuit breaker and restart throttling on real Docker, driven
through the ECS frontend (in process) with a short health grace period."""
import threading

import pytest
from django.utils import timezone

from orchestrator.frontend.operations import dispatch
from orchestrator.models import Deployment, ReconcilePass, Service, ServiceEvent, Task
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker
GRACE = 1.0


@pytest.fixture
def ecs(lab_rows, settings, lab_id):
    """``ecs(operation, **params)`` in the default account, with a 1 s health grace period."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "HEALTH_GRACE_SECONDS": GRACE, "STOP_TIMEOUT_SECONDS": 2}

    def call(operation, **params):
        return dispatch(lab_rows.account, operation, params)

    call.cluster = lab_rows.cluster.name
    return call


def register(ecs, image, **container):
    """A new revision of family "web" (returns its ARN)."""
    definition = {"name": "web", "image": image, "essential": True,
                  "portMappings": [{"containerPort": 80}], **container}
    response = ecs("RegisterTaskDefinition", family="web", cpu="256", memory="512", networkMode="awsvpc",
                   requiresCompatibilities=["FARGATE"], containerDefinitions=[definition])
    return response["taskDefinition"]["taskDefinitionArn"]


def create(ecs, task_definition, count, **configuration):
    ecs("CreateService", cluster=ecs.cluster, serviceName="web", taskDefinition=task_definition,
        desiredCount=count, launchType="FARGATE", deploymentConfiguration=configuration, **NETWORK)
    return Service.objects.get(name="web", cluster__name=ecs.cluster, status="ACTIVE")


def describe(ecs):
    return ecs("DescribeServices", cluster=ecs.cluster, services=["web"])["services"][0]


def healthy_and_steady(service, count):
    """All ``count`` tasks RUNNING past the grace period, and the service steady."""
    running = Task.objects.filter(service=service, last_status="RUNNING", desired_status="RUNNING")
    past = timezone.now() - timezone.timedelta(seconds=GRACE)
    service.refresh_from_db()
    return service.steady and running.count() == count and not running.filter(started_at__gt=past).exists()


class Floor:
    """Watches the lowest number of RUNNING tasks (and running containers) during a rollout."""

    def __init__(self, service, engine):
        self.service, self.engine = service, engine
        self.lowest_tasks = self.lowest_containers = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        from django.db import connection
        try:
            while not self._stop.is_set():
                tasks = Task.objects.filter(service=self.service, last_status="RUNNING").count()
                containers = sum(1 for c in self.engine.list_containers() if c["state"] == "running")
                self.lowest_tasks = tasks if self.lowest_tasks is None else min(self.lowest_tasks, tasks)
                self.lowest_containers = containers if self.lowest_containers is None else min(
                    self.lowest_containers, containers)
                self._stop.wait(0.02)
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_it_rolls_4_tasks_to_revision_2_never_below_min_50_percent(
        control_plane, ecs, lab_rows, docker_engine, wait_until):
    rev1 = register(ecs, lab_rows.image)
    rev2 = register(ecs, lab_rows.image, environment=[{"name": "REVISION", "value": "2"}])
    service = create(ecs, rev1, 4, minimumHealthyPercent=50, maximumPercent=100)
    wait_until(lambda: healthy_and_steady(service, 4), 60, message="4 healthy tasks of revision 1")
    first = Deployment.objects.get(service=service)

    with Floor(service, docker_engine) as floor:
        ecs("UpdateService", cluster=ecs.cluster, service="web", taskDefinition=rev2)
        shown = describe(ecs)["deployments"]
        assert [(d["status"], d["taskDefinition"], d["rolloutState"]) for d in shown] == [
            ("PRIMARY", rev2, "IN_PROGRESS"), ("ACTIVE", rev1, "COMPLETED")]
        wait_until(lambda: Deployment.objects.filter(service=service, status="PRIMARY",
                                                     rollout_state="COMPLETED").exists(),
                   90, message="the rollout to complete")

    assert floor.lowest_tasks >= 2 and floor.lowest_containers >= 2
    running = Task.objects.filter(service=service, last_status="RUNNING")
    assert running.count() == 4
    assert {t.task_definition.revision for t in running} == {2}
    assert len([c for c in docker_engine.list_containers() if c["state"] == "running"]) == 4
    shown = describe(ecs)
    assert [(d["status"], d["rolloutState"], d["runningCount"], d["desiredCount"]) for d in shown["deployments"]] == [
        ("PRIMARY", "COMPLETED", 4, 4)]
    assert shown["deployments"][0]["rolloutStateReason"].endswith("completed.")
    assert shown["taskDefinition"] == rev2
    first.refresh_from_db()
    assert first.status == "INACTIVE"
    stopped = Task.objects.filter(service=service, last_status="STOPPED")
    assert stopped.count() == 4 and {t.task_definition.revision for t in stopped} == {1}
    assert set(stopped.values_list("stopped_reason", flat=True)) == {
        f"Scaling activity initiated by (deployment {shown['deployments'][0]['id']})"}


def test_the_circuit_breaker_fails_a_crashing_revision_and_rolls_back(
        control_plane, ecs, lab_rows, docker_engine, wait_until):
    rev1 = register(ecs, lab_rows.image)
    # A revision whose containers cannot start at all: a task that exited just after its start
    # may be seen RUNNING for a moment, and a RUNNING task counts as healthy (no health check),
    # so the rollout would rightly stop one revision 1 task for it, as ECS does.
    crashing = register(ecs, lab_rows.image, command=["/no-such-program"])
    service = create(ecs, rev1, 4, deploymentCircuitBreaker={"enable": True, "rollback": True})
    wait_until(lambda: healthy_and_steady(service, 4), 60, message="4 healthy tasks of revision 1")
    originals = set(Task.objects.filter(service=service, last_status="RUNNING").values_list("pk", flat=True))
    completed = Deployment.objects.get(service=service)

    ecs("UpdateService", cluster=ecs.cluster, service="web", taskDefinition=crashing)
    failing = Deployment.objects.get(service=service, status="PRIMARY")
    wait_until(lambda: Deployment.objects.get(pk=failing.pk).rollout_state == "FAILED", 60,
               message="the deployment to fail")
    failing.refresh_from_db()
    assert failing.rollout_state_reason == "ECS deployment circuit breaker: tasks failed to start."
    assert failing.failed_tasks >= 3
    wait_until(lambda: Deployment.objects.filter(service=service, status="PRIMARY",
                                                 rollout_state="COMPLETED").exclude(pk=completed.pk).exists(),
               60, message="the rollback deployment to complete")

    shown = describe(ecs)
    assert shown["taskDefinition"] == rev1
    [primary] = [d for d in shown["deployments"] if d["status"] == "PRIMARY"]
    assert primary["taskDefinition"] == rev1 and primary["runningCount"] == 4
    running = Task.objects.filter(service=service, last_status="RUNNING", desired_status="RUNNING")
    assert set(running.values_list("pk", flat=True)) == originals  # the revision 1 tasks never stopped
    assert len([c for c in docker_engine.list_containers() if c["state"] == "running"]) == 4
    messages = [e["message"] for e in shown["events"]]
    assert f"(service web) (deployment {failing.deployment_id}) deployment failed: tasks failed to start." in messages
    assert f"(service web) rolling back to deployment {completed.deployment_id}." in messages
    # A failed deployment launches no more tasks.
    launched = Task.objects.filter(deployment=failing).count()
    wait_until(lambda: not Task.objects.filter(deployment=failing).exclude(last_status="STOPPED").exists(), 30,
               message="the failed deployment's tasks to stop")
    assert Task.objects.filter(deployment=failing).count() == launched


def test_force_new_deployment_replaces_every_task(control_plane, ecs, lab_rows, wait_until):
    rev1 = register(ecs, lab_rows.image)
    service = create(ecs, rev1, 2)
    wait_until(lambda: healthy_and_steady(service, 2), 60, message="2 healthy tasks")
    before = set(Task.objects.filter(service=service).values_list("pk", flat=True))
    ecs("UpdateService", cluster=ecs.cluster, service="web", forceNewDeployment=True)
    wait_until(lambda: Deployment.objects.filter(service=service, status="PRIMARY",
                                                 rollout_state="COMPLETED").count() == 1
               and Deployment.objects.filter(service=service).count() == 2
               and Task.objects.filter(service=service, last_status="RUNNING").count() == 2
               and not Task.objects.filter(service=service, pk__in=before).exclude(last_status="STOPPED").exists(),
               60, message="two new tasks and the old ones stopped")
    new = Task.objects.filter(service=service, last_status="RUNNING")
    assert not set(new.values_list("pk", flat=True)) & before


def test_tasks_that_keep_failing_are_throttled_until_a_new_revision(control_plane, ecs, lab_rows, wait_until):
    crashing = register(ecs, lab_rows.image, command=["sh", "-c", "exit 3"])
    service = create(ecs, crashing, 1)
    wait_until(lambda: ServiceEvent.objects.filter(
        service=service, message="(service web) is unable to consistently start tasks successfully. For more "
                                 "information, see the Troubleshooting section of the Amazon ECS Developer Guide.")
               .exists(), 60, message="the throttling event")
    # Throttled: once the last failed task has stopped, no new task for the next while.
    wait_until(lambda: not Task.objects.filter(service=service).exclude(last_status="STOPPED").exists(), 30,
               message="the last failed task to stop")
    launched = Task.objects.filter(service=service).count()
    good = register(ecs, lab_rows.image)
    ecs("UpdateService", cluster=ecs.cluster, service="web", taskDefinition=good)
    started = timezone.now()
    wait_until(lambda: Task.objects.filter(service=service, last_status="RUNNING").exists(), 8,
               message="the new revision to start at once")
    assert Task.objects.filter(service=service).count() == launched + 1
    assert (timezone.now() - started).total_seconds() < 8


def test_stop_service_deployment_rolls_back_to_the_previous_revision(
        control_plane, ecs, lab_rows, docker_engine, wait_until):
    rev1 = register(ecs, lab_rows.image)
    # Revision 2's tasks run but never turn healthy (the check fails, inside a long start
    # period), so its rollout stays IN_PROGRESS with both revisions' tasks running.
    never_healthy = {"command": ["CMD-SHELL", "exit 1"], "interval": 5, "timeout": 2, "retries": 3,
                     "startPeriod": 300}
    rev2 = register(ecs, lab_rows.image, healthCheck=never_healthy)
    service = create(ecs, rev1, 2)  # no circuit breaker, no rollback option: StopServiceDeployment rolls back anyway
    wait_until(lambda: healthy_and_steady(service, 2), 60, message="2 healthy tasks of revision 1")
    originals = set(Task.objects.filter(service=service, last_status="RUNNING").values_list("pk", flat=True))
    ecs("UpdateService", cluster=ecs.cluster, service="web", taskDefinition=rev2)
    wait_until(lambda: Task.objects.filter(service=service, last_status="RUNNING",
                                           task_definition__revision=2).count() == 2, 60,
               message="revision 2's tasks to run beside revision 1's")
    rev2_tasks = set(Task.objects.filter(service=service, task_definition__revision=2).values_list("task_id", flat=True))
    arn = ecs("ListServiceDeployments", cluster=ecs.cluster, service="web")["serviceDeployments"][0]
    assert arn["status"] == "IN_PROGRESS"

    ecs("StopServiceDeployment", serviceDeploymentArn=arn["serviceDeploymentArn"], stopType="ROLLBACK")

    def rolled_back():
        (shown,) = ecs("DescribeServiceDeployments", serviceDeploymentArns=[arn["serviceDeploymentArn"]])[
            "serviceDeployments"]
        return shown if shown["status"] == "ROLLBACK_SUCCESSFUL" else None

    wait_until(rolled_back, 60, message="the rollback to succeed")
    shown = rolled_back()
    assert shown["rollback"]["reason"].startswith("Service deployment stopped by StopServiceDeployment")
    assert shown["rollback"]["serviceRevisionArn"] == shown["sourceServiceRevisions"][0]["arn"]
    assert "stoppedAt" in shown and "finishedAt" in shown
    assert describe(ecs)["taskDefinition"] == rev1
    # Revision 1's tasks never stopped; revision 2's containers are gone from Docker.
    running = Task.objects.filter(service=service, last_status="RUNNING", desired_status="RUNNING")
    assert set(running.values_list("pk", flat=True)) == originals
    wait_until(lambda: not {c["labels"].get("fargatelab.task-id") for c in docker_engine.list_containers()
                            if c["state"] == "running"} & rev2_tasks, 30, message="revision 2's containers to stop")
    assert len([c for c in docker_engine.list_containers() if c["state"] == "running"]) == 2
    events = [e["message"] for e in describe(ecs)["events"]]
    assert f"(service web) (deployment {Deployment.objects.get(rollback_of=None, task_definition__revision=2).deployment_id})" \
           " deployment stopped: StopServiceDeployment." in events


def test_a_protected_task_survives_a_scale_in(control_plane, ecs, lab_rows, docker_engine, wait_until):
    rev1 = register(ecs, lab_rows.image)
    service = create(ecs, rev1, 3)
    wait_until(lambda: healthy_and_steady(service, 3), 60, message="3 healthy tasks")
    keep = Task.objects.filter(service=service, last_status="RUNNING").order_by("pk").first()
    shown = ecs("UpdateTaskProtection", cluster=ecs.cluster, tasks=[keep.task_id], protectionEnabled=True,
                expiresInMinutes=60)
    assert shown["protectedTasks"][0]["protectionEnabled"] is True

    ecs("UpdateService", cluster=ecs.cluster, service="web", desiredCount=1)
    wait_until(lambda: healthy_and_steady(service, 1), 60, message="the scale-in to 1")
    (left,) = Task.objects.filter(service=service, last_status="RUNNING")
    assert left.pk == keep.pk
    running = [c for c in docker_engine.list_containers() if c["state"] == "running"]
    assert [c["labels"]["fargatelab.task-id"] for c in running] == [keep.task_id]

    # With every task protected, a scale-in to 0 waits; lifting the protection lets it go on.
    ecs("UpdateService", cluster=ecs.cluster, service="web", desiredCount=0)
    wait_until(lambda: ReconcilePass.objects.filter(service=service, desired=0).exists(), 30,
               message="a pass of the scheduler at desired 0")
    assert Task.objects.get(pk=keep.pk).desired_status == "RUNNING"
    ecs("UpdateTaskProtection", cluster=ecs.cluster, tasks=[keep.task_id], protectionEnabled=False)
    wait_until(lambda: Task.objects.get(pk=keep.pk).last_status == "STOPPED", 30, message="the task to stop")
