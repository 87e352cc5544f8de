"""Fargate Spot interruptions drawn at FARGATE_LAB_SPOT_INTERRUPTION_RATE, on real Docker: the
warning's SIGTERM, SIGKILL when the warning ends (before a longer stopTimeout), and FARGATE
tasks left alone."""
import pytest

from orchestrator import bus
from orchestrator.models import Task, TaskContainer

STUBBORN = "trap '' TERM; while true; do sleep 1; done"


@pytest.fixture
def spot_settings(settings):
    """Interruptions certain at every resync (twice a second), with a two-second warning."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "RESYNC_SECONDS": 0.5, "SPOT_INTERRUPTION_RATE": 1e7,
                            "SPOT_WARNING_SECONDS": 2.0}
    return settings


@pytest.mark.docker
def test_a_spot_task_is_interrupted_at_the_rate_and_killed_when_the_warning_ends(
        spot_settings, control_plane, lab_rows, docker_engine, wait_until):
    definition = lab_rows.task_definition(entryPoint=["sh", "-c"], command=[STUBBORN], stopTimeout=60,
                                          portMappings=[])
    on_demand = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=on_demand.pk).last_status == "RUNNING", 30, message="the FARGATE task RUNNING")
    spot = lab_rows.run_task(definition, publish=False)
    Task.objects.filter(pk=spot.pk).update(capacity_provider="FARGATE_SPOT")
    bus.publish("task", spot.pk)

    stopped = wait_until(lambda: Task.objects.filter(pk=spot.pk, last_status="STOPPED").first(), 30,
                         message="the Spot task interrupted and STOPPED")
    assert (stopped.stop_code, stopped.stopped_reason) == ("SpotInterruption", "Your Spot Task was interrupted.")
    container = TaskContainer.objects.get(task=stopped)
    assert container.exit_code == 137  # it ignored SIGTERM: SIGKILLed …
    killed_after = (container.stop_deadline - stopped.stopping_at).total_seconds()
    assert killed_after <= 2.5  # … when the 2 s warning ended, long before its stopTimeout of 60 s
    assert stopped.started_at is not None and stopped.started_at < stopped.stopping_at
    assert docker_engine.list_containers(labels={"fargatelab.task-id": stopped.task_id}) == []

    # The draws that hit the Spot task (one every half second, each certain) passed over the
    # FARGATE task running beside it.
    still = Task.objects.get(pk=on_demand.pk)
    assert (still.desired_status, still.last_status, still.stop_code) == ("RUNNING", "RUNNING", "")
    assert still.started_at < stopped.stopping_at
