"""The fleet on real Docker: a service larger than the warm pool makes the capacity manager
launch instances; scaling it down lets them drain and go."""
import pytest

from orchestrator.models import Activity, ContainerInstance, Task

pytestmark = pytest.mark.docker


@pytest.fixture
def small_fleet(settings, lab_id):
    """A warm pool of one instance that holds two tasks, quick boots and quick recycling."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "FLEET_INSTANCES": 1, "MAX_INSTANCES": 4, "INSTANCE_CPU": 512,
                            "INSTANCE_MEMORY": 1024, "INSTANCE_BOOT_SECONDS": 0.5, "INSTANCE_IDLE_SECONDS": 1.0,
                            "STOP_TIMEOUT_SECONDS": 2}


def statuses():
    return dict(ContainerInstance.objects.values_list("name", "status"))


def test_it_grows_the_fleet_for_a_large_service_and_shrinks_it_after(
        small_fleet, control_plane, lab_rows, docker_engine, wait_until):
    assert statuses() == {"fleet-1": "ACTIVE"}
    service = lab_rows.create_service(5)
    seen = set()

    def all_running():
        seen.update(s for s in statuses().values())
        return Task.objects.filter(service=service, last_status="RUNNING").count() == 5

    wait_until(all_running, 60, interval=0.02, message="5 tasks RUNNING on a grown fleet")
    assert "PROVISIONING" in seen  # the new instances were seen booting
    assert statuses() == {"fleet-1": "ACTIVE", "fleet-2": "ACTIVE", "fleet-3": "ACTIVE"}
    per_instance = {}
    for task in Task.objects.filter(service=service, last_status="RUNNING").select_related("container_instance"):
        per_instance[task.container_instance.name] = per_instance.get(task.container_instance.name, 0) + 1
    assert sorted(per_instance.values()) == [1, 2, 2]
    launches = Activity.objects.filter(component="capacity_manager", action="launch-instance",
                                       message__startswith="launching fleet-")
    assert launches.count() == 2 and "fit on no instance" in launches.first().message
    assert Activity.objects.filter(component="capacity_manager", action="instance-active").count() == 2

    lab_rows.update_service(service, desired_count=1)
    wait_until(lambda: sorted(statuses().values()) == ["ACTIVE", "INACTIVE", "INACTIVE"], 60,
               message="the fleet back to one ACTIVE instance")
    assert Task.objects.filter(service=service, last_status="RUNNING").count() == 1
    # An instance turns INACTIVE (the claim) a moment before its recycling is recorded.
    wait_until(lambda: Activity.objects.filter(component="capacity_manager", action="recycle-instance").count() == 2,
               10, message="both recyclings recorded")
    assert Activity.objects.filter(component="capacity_manager", action="drain-instance").count() == 2
    assert len([c for c in docker_engine.list_containers() if c["state"] == "running"]) == 1


def test_tasks_wait_at_the_maximum_fleet_size(settings, small_fleet, control_plane, lab_rows, wait_until):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "MAX_INSTANCES": 2}
    service = lab_rows.create_service(5)
    wait_until(lambda: Task.objects.filter(service=service, last_status="RUNNING").count() == 4, 60,
               message="4 tasks RUNNING on 2 instances")
    waiting = Task.objects.get(service=service, last_status="PROVISIONING")
    assert waiting.pending_reason.startswith("No Fargate capacity")
    assert ContainerInstance.objects.exclude(status="INACTIVE").count() == 2
