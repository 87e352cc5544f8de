"""Fixtures: docker — a real engine, a unique lab id, the demo image, an in-process control plane.

Tests marked ``docker`` FAIL (never skip) when no engine answers. Every test gets its own lab
id (``test-<uuid8>``), so it sees and cleans up only its own containers and networks while
other engineers' tests use the same engine.
"""
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from orchestrator.docker_engine import DockerEngine, EngineError
from tests.support.common import ROOT, build_demo_image, wait_until


@pytest.fixture(name="wait_until")
def wait_until_fixture():
    """The ``wait_until(predicate, timeout, message=…)`` helper."""
    return wait_until


@pytest.fixture
def lab_id(settings):
    """A unique lab id for this test, set in settings.FARGATE_LAB; its containers, networks and
    volumes are removed afterwards (and nothing else)."""
    lab = f"test-{uuid.uuid4().hex[:8]}"
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "LAB_ID": lab, "RESYNC_SECONDS": 2.0}
    yield lab
    from orchestrator import paced_logs, sandbox_pool
    from orchestrator.host_firewall import HostFirewall

    sandbox_pool.reset()  # its refills would make sandboxes for this lab after it is gone
    HostFirewall(lab).remove()  # a control plane that did not stop cleanly leaves it behind
    engine = DockerEngine(lab=lab)
    try:
        for container in engine.list_containers():
            engine.remove(container["id"])
        engine.remove_unused_networks()
        engine.remove_volumes()  # its EFS file systems
    except EngineError:  # the engine is gone: nothing of ours can be left running on it
        pass
    paced_logs.stop(lab)  # it outlives a control plane by design; a test's lab is done with


@pytest.fixture
def docker_engine(lab_id):
    """The Docker engine of this lab; fails the test with a clear message if none answers."""
    engine = DockerEngine.for_url("", lab=lab_id)
    try:
        engine.ping()
    except EngineError as exc:
        pytest.fail(str(exc))
    return engine


@pytest.fixture(scope="session")
def demo_image():
    """The demo image, built (offline) once per test session by demo/build.sh."""
    return build_demo_image()


@pytest.fixture
def control_plane(transactional_db, docker_engine, demo_image):
    """An in-process ControlPlane on the test database, stopped after the test.

    ``control_plane.restart()`` stops it and starts a fresh one (a lab restart).
    """
    from orchestrator.controlplane import ControlPlane

    class Holder:
        def __init__(self):
            self.current = ControlPlane()
            self.current.start()

        def restart(self):
            self.current.stop()
            self.current = ControlPlane()
            self.current.start()
            return self.current

        def __getattr__(self, name):
            return getattr(self.current, name)

    holder = Holder()
    yield holder
    holder.current.stop()


def _dockerd_pid():
    return int(Path("/var/run/docker.pid").read_text().strip())


def _alive(pid):
    """Whether process ``pid`` still runs (a zombie has exited, whoever has yet to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def restart_docker_daemon(timeout=60):
    """Restart the machine's dockerd with its own command line (SIGTERM, wait, start again)."""
    pid = _dockerd_pid()
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    args = [a.decode() for a in args if a]
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _alive(pid), timeout, message="dockerd to exit")
    # Started through a shell that exits at once, the new dockerd is not our child: it outlives
    # this test process, and when the next restart stops it, init reaps it (no zombie).
    log = ROOT / "var" / "dockerd-restart.log"
    subprocess.run(
        ["sh", "-c", 'setsid "$@" >>"$0" 2>&1 </dev/null &', str(log), *args], check=True, stdin=subprocess.DEVNULL
    )

    def answers():
        try:
            return DockerEngine(lab="restart-probe").ping()
        except EngineError:
            return False

    wait_until(answers, timeout, interval=0.2, message="dockerd to answer again")


@pytest.fixture
def restart_docker():
    """A function that restarts the Docker daemon (every lab's containers stop with it)."""
    return restart_docker_daemon


class LabRows:
    """Rows a test needs, written straight to the models (no HTTP): account, cluster, task
    definition, tasks and services, shaped as the frontend writes them."""

    def __init__(self, image):
        from orchestrator.models import Account, Cluster

        self.image = image
        self.account = Account.default()
        self.cluster = Cluster.objects.create(account=self.account, name=f"c-{uuid.uuid4().hex[:6]}")

    def task_definition(self, cpu=256, memory=512, family="web", **container):
        """A task definition with one container (the demo image by default)."""
        from orchestrator.models import TaskDefinition

        definition = {"name": "web", "image": self.image, "essential": True,
                      "portMappings": [{"containerPort": 80, "protocol": "tcp"}], **container}
        revision = TaskDefinition.objects.filter(account=self.account, family=family).count() + 1
        return TaskDefinition.objects.create(
            account=self.account, family=family, revision=revision, cpu=cpu, memory=memory,
            body={"family": family, "containerDefinitions": [definition], "cpu": str(cpu), "memory": str(memory)},
        )

    def run_task(self, task_definition=None, overrides=None, publish=True):
        """A task as RunTask writes it (desired RUNNING, last PROVISIONING), published on the bus."""
        from orchestrator import bus
        from orchestrator.models import Task, TaskContainer

        task_definition = task_definition or self.task_definition()
        task = Task.objects.create(
            account=self.account, cluster=self.cluster, task_definition=task_definition,
            cpu=task_definition.cpu, memory=task_definition.memory, overrides=overrides or {},
        )
        for c in task_definition.container_definitions:
            TaskContainer.objects.create(task=task, name=c["name"], image=c["image"],
                                         essential=c.get("essential", True), cpu=c.get("cpu") or 0,
                                         memory=c.get("memory"))
        if publish:
            bus.publish("task", task.pk)
        return task

    def create_service(self, desired_count, task_definition=None, name="svc", publish=True):
        """A service with its PRIMARY deployment, as CreateService writes it."""
        from orchestrator import bus
        from orchestrator.models import Deployment, Service

        task_definition = task_definition or self.task_definition()
        service = Service.objects.create(account=self.account, cluster=self.cluster, name=name,
                                         task_definition=task_definition, desired_count=desired_count)
        Deployment.objects.create(service=service, deployment_id=Deployment.new_id(),
                                  task_definition=task_definition, desired_count=desired_count)
        if publish:
            bus.publish("service", service.pk)
        return service

    def update_service(self, service, **fields):
        """Change a service's desired state as UpdateService/DeleteService do, and publish it."""
        from django.utils import timezone

        from orchestrator import bus
        from orchestrator.models import Service

        Service.objects.filter(pk=service.pk).update(updated_at=timezone.now(), **fields)
        bus.publish("service", service.pk)
        service.refresh_from_db()
        return service


@pytest.fixture
def lab_rows(transactional_db, demo_image):
    """A LabRows helper with a fresh cluster in the default account."""
    return LabRows(demo_image)
