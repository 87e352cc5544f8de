"""Stopping without holding a worker: the stop signal, a deadline kept in the state database,
and SIGKILL at the deadline, also across a control-plane restart (real Docker)."""
import pytest

from orchestrator import bus
from orchestrator.models import Task, TaskContainer

STUBBORN = "trap '' TERM; while true; do sleep 1; done"


@pytest.mark.docker
def test_a_restart_honours_the_recorded_stop_deadline(control_plane, lab_rows, docker_engine, wait_until):
    definition = lab_rows.task_definition(entryPoint=["sh", "-c"], command=[STUBBORN], stopTimeout=4,
                                          portMappings=[])
    task = lab_rows.run_task(definition)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 20, message="task RUNNING")
    Task.objects.filter(pk=task.pk).update(desired_status="STOPPED", stop_code="UserInitiated")
    bus.publish("task", task.pk, stop=True)
    deadline = wait_until(lambda: TaskContainer.objects.get(task=task).stop_deadline, 10, message="a stop deadline")
    assert Task.objects.get(pk=task.pk).last_status == "STOPPING"

    control_plane.restart()
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 20, message="task STOPPED")
    container = TaskContainer.objects.get(task=task)
    assert container.stop_deadline == deadline  # not signalled again with a later deadline
    assert container.exit_code == 137  # SIGKILLed …
    assert Task.objects.get(pk=task.pk).execution_stopped_at >= deadline  # … once its deadline had come
    assert docker_engine.list_containers() == []
