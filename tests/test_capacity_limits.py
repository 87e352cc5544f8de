"""Tasks bigger than the fleet can ever hold are refused at once, with ECS's reasons, and
instances are as big as their Docker engine (real engine, in-process control plane)."""
import subprocess

import pytest

from orchestrator.frontend import call
from orchestrator.frontend.task_definitions import FARGATE_SIZES
from orchestrator.models import Activity, ContainerInstance, ServiceEvent, Task, TaskDefinition
from tests.support.api import fargate_task_definition


def engine_resources():
    """(CPU units, MiB) of the machine's Docker engine, read with the docker CLI (not the lab's code)."""
    out = subprocess.run(["docker", "info", "--format", "{{.NCPU}} {{.MemTotal}}"], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]) * 1024, int(out[1]) // (1024 * 1024)


def sized_by_engine(settings, cpu=None, memory=None):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "INSTANCE_CPU": cpu, "INSTANCE_MEMORY": memory}


def too_big_size():
    """(cpu, memory, reason) of a Fargate size this engine cannot give."""
    engine_cpu, engine_memory = engine_resources()
    for cpu, memories in FARGATE_SIZES.items():
        if cpu > engine_cpu:
            return cpu, memories[0], "RESOURCE:CPU"
    for cpu, memories in FARGATE_SIZES.items():
        for memory in memories:
            if memory > engine_memory:
                return cpu, memory, "RESOURCE:MEMORY"
    pytest.fail(f"this engine ({engine_cpu} CPU units, {engine_memory} MiB) can give every Fargate size")


def biggest_fitting_size():
    """The biggest Fargate CPU size this engine can give, with its least memory."""
    engine_cpu, engine_memory = engine_resources()
    cpu = max(c for c, memories in FARGATE_SIZES.items() if c <= engine_cpu and memories[0] <= engine_memory)
    return cpu, FARGATE_SIZES[cpu][0]


def register(account, cpu, memory):
    call(account, "RegisterTaskDefinition", fargate_task_definition(cpu=str(cpu), memory=str(memory)))
    return TaskDefinition.objects.filter(family="web").latest("revision")


@pytest.mark.docker
def test_the_warm_pool_is_as_big_as_the_engine(control_plane, settings):
    sized_by_engine(settings)
    from orchestrator.capacity_manager import ensure_fleet

    ensure_fleet()
    sizes = set(ContainerInstance.objects.values_list("cpu_registered", "memory_registered"))
    assert sizes == {engine_resources()}


@pytest.mark.docker
def test_run_task_refuses_a_size_no_instance_can_hold(ecs, docker_engine, settings):
    sized_by_engine(settings)
    cpu, memory, reason = too_big_size()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition(cpu=str(cpu), memory=str(memory)))
    response = ecs.run_task(cluster="demo", taskDefinition="web", count=2, launchType="FARGATE",
                            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"]}})
    assert response["tasks"] == []
    assert [f["reason"] for f in response["failures"]] == [reason, reason]
    engine_cpu, engine_memory = engine_resources()
    assert f"the Docker engine has {engine_cpu // 1024} CPUs / {engine_memory} MiB" in response["failures"][0]["detail"]
    assert not Task.objects.exists()


@pytest.mark.docker
def test_instances_set_bigger_than_the_engine_still_refuse_what_it_cannot_give(ecs, docker_engine, settings):
    engine_cpu, _ = engine_resources()
    cpu = next((c for c in FARGATE_SIZES if c > engine_cpu), None)
    if cpu is None:
        pytest.fail("this engine has more CPUs than any Fargate size")
    sized_by_engine(settings, cpu=cpu * 2, memory=FARGATE_SIZES[cpu][0] * 2)  # as FARGATE_LAB_INSTANCE_CPU=… does
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition(cpu=str(cpu), memory=str(FARGATE_SIZES[cpu][0])))
    response = ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE",
                            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"]}})
    assert [f["reason"] for f in response["failures"]] == ["RESOURCE:CPU"]
    assert f"instances are {cpu * 2} CPU units" in response["failures"][0]["detail"]


@pytest.mark.docker
def test_a_task_as_big_as_the_engine_runs(control_plane, lab_rows, settings, wait_until):
    sized_by_engine(settings)
    cpu, memory = biggest_fitting_size()
    task = lab_rows.run_task(lab_rows.task_definition(cpu=cpu, memory=memory))
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status in ("RUNNING", "STOPPED"), 30,
               message="the task RUNNING (or STOPPED)")
    task.refresh_from_db()
    assert (task.last_status, task.stopped_reason) == ("RUNNING", "")


@pytest.mark.docker
def test_a_service_too_big_for_the_fleet_says_so_once_and_starts_nothing(control_plane, lab_rows, settings,
                                                                           wait_until):
    sized_by_engine(settings)
    cpu, memory, reason = too_big_size()
    service = lab_rows.create_service(2, lab_rows.task_definition(cpu=cpu, memory=memory))
    wait_until(lambda: ServiceEvent.objects.filter(service=service).exists(), 20, message="a service event")
    [event] = ServiceEvent.objects.filter(service=service)
    assert event.message.startswith(f"(service svc) was unable to place a task because no container instance met "
                                    f"all of its requirements. Reason: {reason}: No Fargate Lab instance can hold")
    for _ in range(2):  # more passes over the service say nothing new
        control_plane.cluster_manager.sync_service(service.pk)
    assert ServiceEvent.objects.filter(service=service).count() == 1
    assert not Task.objects.filter(service=service).exists()


@pytest.mark.docker
def test_a_task_written_past_runtask_that_can_never_fit_is_stopped_with_the_reason(
        control_plane, lab_rows, settings, wait_until, caplog):
    sized_by_engine(settings)
    cpu, memory, reason = too_big_size()
    task = lab_rows.run_task(lab_rows.task_definition(cpu=cpu, memory=memory))
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 20, message="the task STOPPED")
    task.refresh_from_db()
    assert task.stop_code == "TaskFailedToStart"
    assert task.stopped_reason.startswith(f"{reason}: No Fargate Lab instance can hold")
    assert Activity.objects.filter(object_arn=task.arn, action="no-capacity").count() == 1
    assert not [r for r in caplog.records if r.exc_info]
