"""The agent's batched pass on a simulated instance (orchestrator/agent_batch.py): the tasks placed
there start together, in a number of statements that does not grow with them, with claims that
stay conditional; anything but the plain start is left to the task's own pass."""
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator import activity, agent_batch, simulated_engine
from orchestrator.agent import Agent
from orchestrator.controlplane import ControlPlane
from orchestrator.docker_engine import Conflict, DockerEngine
from orchestrator.models import Account, Activity, Cluster, ContainerInstance, Task, TaskContainer, TaskDefinition


@pytest.fixture
def sim(db):
    """A simulated instance of its own runtime, and a way to place tasks on it (PENDING)."""
    url = f"sim://batch-{uuid.uuid4().hex[:8]}?cpus=64"
    instance = ContainerInstance.objects.create(name="sim-1", engine_url=url, cpu_registered=65536,
                                                memory_registered=262144, agent_connected=True)
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="batch")

    def place(count, **container):
        definition = TaskDefinition.objects.create(
            account=account, family="web", revision=TaskDefinition.objects.filter(family="web").count() + 1,
            cpu=256, memory=512, body={"containerDefinitions": [
                {"name": "web", "image": "fargate-lab/demo:latest", "essential": True, **container}]})
        tasks = []
        for _ in range(count):
            task = Task.objects.create(account=account, cluster=cluster, task_definition=definition, cpu=256,
                                       memory=512, last_status=Task.PENDING, container_instance=instance)
            TaskContainer.objects.create(task=task, name="web", image="fargate-lab/demo:latest")
            tasks.append(task)
        return tasks

    place.instance = instance
    place.engine = DockerEngine.for_url(url)
    return place


def run_pass(instance):
    """One batched pass as a control-plane worker runs it (its rows written at its end); the keys it enqueued."""
    keys = []
    with activity.batched():
        started = agent_batch.sync_instance_tasks(instance.pk, lambda key, **how: keys.append(key))
    return started, keys


def test_one_pass_starts_every_waiting_task_in_as_many_statements_for_3_as_for_12(sim):
    statements = {}
    for count in (3, 12):
        tasks = sim(count)
        with CaptureQueriesContext(connection) as queries:
            started, keys = run_pass(sim.instance)
        assert (started, keys) == (count, [])
        statements[count] = len(queries)
        for task in Task.objects.filter(pk__in=[t.pk for t in tasks]):
            assert task.last_status == "RUNNING" and task.private_ip.startswith("10.200.")
            assert task.connectivity_at is not None and task.started_at is not None and task.version == 3
            container = task.containers.get()
            assert container.last_status == "RUNNING" and container.started_at is not None
            assert [c["id"] for c in sim.engine.list_containers(labels={"fargatelab.task-id": task.task_id})] == [
                container.docker_id]
            assert set(Activity.objects.filter(object_arn=task.arn, component="agent").values_list(
                "action", flat=True)) == {"sync", "running"}
    assert statements[3] == statements[12]


def test_a_task_another_worker_moved_first_is_left_to_its_own_pass(sim, monkeypatch):
    tasks = sim(4)
    moved = tasks[1]
    start = sim.engine.start_containers

    def start_then_stop_one(ids):  # a StopTask's pass takes the task while its containers start
        found = start(ids)
        Task.objects.filter(pk=moved.pk).update(desired_status="STOPPED", last_status="DEACTIVATING")
        return found

    monkeypatch.setattr(sim.engine, "start_containers", start_then_stop_one)
    started, keys = run_pass(sim.instance)
    assert (started, keys) == (3, [f"task:{moved.pk}"])
    assert Task.objects.get(pk=moved.pk).last_status == "DEACTIVATING"  # never ACTIVATING nor RUNNING
    assert set(Task.objects.filter(last_status="RUNNING").values_list("pk", flat=True)) == {
        t.pk for t in tasks if t.pk != moved.pk}


def test_a_task_whose_start_is_not_plain_goes_to_its_own_pass_untouched(sim):
    secret = sim(1, secrets=[{"name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/t"}])[0]
    adopted = sim(1)[0]  # a container already made for it (a pass that crashed after the create)
    sim.engine.create_container({"name": f"fargatelab-{sim.engine.lab}-{adopted.task_id}-web", "image": "x",
                                 "labels": {"fargatelab.task-id": adopted.task_id}})
    mounting = sim(1, mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}])[0]
    TaskDefinition.objects.filter(pk=mounting.task_definition_id).update(body={
        **mounting.task_definition.body, "volumes": [{"name": "data"}]})
    plain = sim(1)[0]
    started, keys = run_pass(sim.instance)
    assert started == 1 and sorted(keys) == sorted([f"task:{t.pk}" for t in (secret, adopted, mounting)])
    assert Task.objects.get(pk=plain.pk).last_status == "RUNNING"
    assert {Task.objects.get(pk=t.pk).last_status for t in (secret, adopted, mounting)} == {"PENDING"}
    for task in (secret, mounting):
        assert sim.engine.list_containers(labels={"fargatelab.task-id": task.task_id}) == []


def test_a_pass_takes_at_most_a_batch_and_asks_for_another(sim, monkeypatch):
    monkeypatch.setattr(agent_batch, "BATCH", 2)
    sim(3)
    assert run_pass(sim.instance) == (2, [agent_batch.key(sim.instance.pk)])
    assert run_pass(sim.instance) == (1, [])


def test_the_runtime_pays_each_latency_once_per_batch_and_reports_conflicts_in_place(monkeypatch):
    slept = []
    monkeypatch.setattr(simulated_engine.time, "sleep", slept.append)
    engine = DockerEngine.for_url(f"sim://latency-{uuid.uuid4().hex[:8]}?eni=0.2&start=0.3", lab="unit-lab")
    specs = [{"name": f"c{n}", "image": "demo:1", "labels": {"fargatelab.task-id": f"t{n}"}} for n in range(3)]
    first = engine.create_containers(specs[:1])
    created = engine.create_containers(specs)
    assert isinstance(created[0], Conflict) and all(isinstance(c, str) for c in created[1:])
    assert len(engine.list_containers()) == 3
    assert engine.start_containers(first + created[1:]) == [None, None, None]
    assert slept == [0.2, 0.2, 0.3]
    assert {c["state"] for c in engine.list_containers()} == {"running"}


def test_the_agent_records_a_burst_of_simulated_events_in_one_insert(sim):
    agent = Agent(sim.instance.engine_url, lambda key, **how: None)
    agent._stream = sim.engine.events()
    for n in range(5):
        sim.engine.create_container({"name": f"burst-{n}", "image": "demo:1", "labels": {}})
    first = next(iter(agent._stream))
    with CaptureQueriesContext(connection) as queries:
        agent.handle_events(first)
    inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "orchestrator_activity"')]
    assert len(inserts) == 1
    assert Activity.objects.filter(component="docker", action="create").count() == 5
    assert agent._stream.waiting(10) == []
    agent._stream.close()


def test_the_control_plane_sends_a_simulated_instances_new_tasks_to_its_batched_pass(sim):
    task = sim(1)[0]
    docker = ContainerInstance.objects.create(name="real-1", engine_url="", cpu_registered=4096,
                                              memory_registered=8192)
    plane = ControlPlane()
    plane._on_placed(task.pk, task.account_id, instance_pk=sim.instance.pk)
    plane._on_placed(task.pk, task.account_id, instance_pk=docker.pk)
    assert [plane.agent_queue.get(), plane.agent_queue.get()] == [agent_batch.key(sim.instance.pk), f"task:{task.pk}"]


def test_the_database_watcher_leaves_a_new_task_placed_on_a_simulated_instance_to_its_batched_pass(sim):
    from django.utils import timezone

    plane = ControlPlane()
    plane._cursor = timezone.now()
    placed = sim(1)[0]  # placed by this control plane (only the leader places): its batched pass was told
    waiting = sim(1)[0]
    Task.objects.filter(pk=waiting.pk).update(last_status="PROVISIONING", container_instance=None)
    plane.watch_once()
    assert plane.scheduler_queue.get() == "placement" and len(plane.agent_queue) == 0
    Task.objects.filter(pk=placed.pk).update(desired_status="STOPPED", updated_at=timezone.now())  # a stop: looked at
    plane.watch_once()
    assert plane.agent_queue.get() == f"task:{placed.pk}"


def test_a_relist_leaves_the_tasks_a_batched_pass_started_but_looks_at_those_that_changed(sim):
    keys = []
    agent = Agent(sim.instance.engine_url, lambda key, **how: keys.append(key))
    agent.relist()  # the first list (nothing yet)
    tasks = sim(3)
    run_pass(sim.instance)
    agent.relist(full=False)
    assert keys == []
    container = sim.engine.list_containers(labels={"fargatelab.task-id": tasks[0].task_id})[0]
    sim.engine.kill(container["id"], "SIGKILL")
    agent.relist(full=False)
    assert keys == [f"task:{tasks[0].pk}"]


def test_the_resync_gives_a_batched_pass_its_waiting_tasks_and_a_stuck_one_its_own_pass(sim, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    pending, reporting, stuck, waiting = sim(4)
    Task.objects.filter(pk=reporting.pk).update(last_status="ACTIVATING")
    Task.objects.filter(pk=stuck.pk).update(last_status="ACTIVATING", updated_at=timezone.now() - timedelta(minutes=1))
    Task.objects.filter(pk=waiting.pk).update(last_status="PROVISIONING", container_instance=None)
    plane = ControlPlane()
    monkeypatch.setattr(plane, "_guard_host", lambda: None)  # no host firewall in a unit test
    plane.resync(full=False)
    keys = {plane.agent_queue.get() for _ in range(len(plane.agent_queue))}
    assert keys == {agent_batch.key(sim.instance.pk), f"task:{stuck.pk}"}
    assert "placement" in {plane.scheduler_queue.get() for _ in range(len(plane.scheduler_queue))}
