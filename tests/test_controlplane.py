"""The control plane end to end on real Docker: replacement of killed containers without any
API call, adoption across a control plane restart, convergence after a Docker daemon restart,
leader election, the database watcher, and labels that keep other labs' containers safe; and
the two work queues, which keep the scheduler's passes from waiting behind Docker's."""
import subprocess
import threading
import time
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from orchestrator.controlplane import LEASE_NAME, ControlPlane
from orchestrator.docker_engine import DockerEngine, NotOwned
from orchestrator.models import ContainerInstance, Lease, Task


def running_tasks(svc):
    return svc.tasks.filter(last_status="RUNNING", desired_status="RUNNING")


def running_containers(engine):
    return [c for c in engine.list_containers() if c["state"] == "running"]


@pytest.mark.docker
def test_it_replaces_a_killed_container_with_no_api_call(control_plane, lab_rows, docker_engine, wait_until):
    svc = lab_rows.create_service(2)
    wait_until(lambda: running_tasks(svc).count() == 2, 30, message="2 tasks RUNNING")
    victim = running_tasks(svc).first()
    subprocess.run(["docker", "kill", victim.containers.get().docker_id], check=True, capture_output=True)
    wait_until(lambda: Task.objects.get(pk=victim.pk).last_status == "STOPPED", 20, message="killed task STOPPED")
    victim.refresh_from_db()
    assert victim.containers.get().exit_code == 137
    assert victim.stopped_reason == "Essential container in task exited"
    assert victim.stop_code == "EssentialContainerExited"
    wait_until(lambda: running_tasks(svc).count() == 2 and len(running_containers(docker_engine)) == 2, 20,
               message="a replacement RUNNING")
    assert svc.tasks.count() == 3


@pytest.mark.docker
def test_it_adopts_running_tasks_across_a_control_plane_restart(control_plane, lab_rows, docker_engine, wait_until):
    svc = lab_rows.create_service(2)
    wait_until(lambda: running_tasks(svc).count() == 2, 30, message="2 tasks RUNNING")
    before = {c["id"] for c in docker_engine.list_containers()}
    tasks_before = set(running_tasks(svc).values_list("pk", flat=True))
    control_plane.restart()
    control_plane.resync()
    wait_until(control_plane.idle, 10,
               message="the resync to be processed")
    assert {c["id"] for c in docker_engine.list_containers()} == before
    assert set(running_tasks(svc).values_list("pk", flat=True)) == tasks_before
    assert svc.tasks.count() == 2


@pytest.mark.docker
def test_it_converges_after_the_docker_daemon_restarts(control_plane, lab_rows, docker_engine, restart_docker,
                                                       wait_until):
    svc = lab_rows.create_service(2)
    wait_until(lambda: running_tasks(svc).count() == 2, 30, message="2 tasks RUNNING")
    restart_docker()
    wait_until(lambda: running_tasks(svc).count() == 2 and len(running_containers(docker_engine)) == 2
               and len(docker_engine.list_containers()) == 2, 90, interval=0.2,
               message="2 tasks RUNNING again, with exactly 2 containers")
    running_ids = {t.containers.get().docker_id for t in running_tasks(svc)}
    assert running_ids == {c["id"] for c in docker_engine.list_containers()}


@pytest.mark.docker
def test_it_never_touches_another_labs_containers(control_plane, lab_rows, docker_engine, wait_until, lab_id):
    other = DockerEngine(lab=f"other-{uuid.uuid4().hex[:8]}")
    theirs = other.create_container({"name": f"fargatelab-{other.lab}-x", "image": lab_rows.image,
                                     "labels": {"fargatelab.task-id": "nope"}})
    unlabelled = subprocess.run(["docker", "create", "--name", f"unlabelled-{lab_id}", lab_rows.image],
                                check=True, capture_output=True, text=True).stdout.strip()
    # An orphan of OUR lab (its task is unknown) is removed by the relist.
    ours = docker_engine.create_container({"name": f"fargatelab-{lab_id}-orphan", "image": lab_rows.image,
                                           "labels": {"fargatelab.task-id": "unknown"}})
    try:
        control_plane.resync()
        wait_until(lambda: docker_engine.list_containers() == [], 10, message="our orphan removed")
        assert other.inspect(theirs)["Id"] == theirs
        for container in (theirs, unlabelled):
            with pytest.raises(NotOwned):
                docker_engine.stop(container)
            with pytest.raises(NotOwned):
                docker_engine.remove(container)
        assert ours not in {c["id"] for c in docker_engine.list_containers()}
    finally:
        other.remove(theirs)
        subprocess.run(["docker", "rm", "-f", unlabelled], capture_output=True)


@pytest.mark.docker
def test_the_relist_removes_a_container_left_behind_by_a_stopped_task(control_plane, lab_rows, docker_engine,
                                                                        wait_until, lab_id):
    task = lab_rows.run_task(publish=False)
    Task.objects.filter(pk=task.pk).update(desired_status="STOPPED", last_status="STOPPED")
    left = docker_engine.create_container({"name": f"fargatelab-{lab_id}-left-behind", "image": lab_rows.image,
                                           "labels": {"fargatelab.task-id": task.task_id}})
    assert left in {c["id"] for c in docker_engine.list_containers()}
    control_plane.resync()
    wait_until(lambda: docker_engine.list_containers() == [], 10, message="the stopped task's container removed")
    assert Task.objects.get(pk=task.pk).last_status == "STOPPED"


@pytest.mark.docker
def test_it_hears_a_frontend_in_another_process_through_the_database(
        control_plane, lab_rows, wait_until):
    task = lab_rows.run_task(publish=False)  # no bus event: only the database says it
    svc = lab_rows.create_service(1, publish=False)
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 20, message="task RUNNING")
    wait_until(lambda: running_tasks(svc).count() == 1, 20, message="the service's task RUNNING")
    Task.objects.filter(pk=task.pk).update(desired_status="STOPPED", updated_at=timezone.now())
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 20, message="task STOPPED")


def test_a_service_pass_does_not_wait_behind_busy_agent_workers():
    """Every agent worker is held in a (slow) task pass; a service key is processed meanwhile."""
    plane = ControlPlane(workers=2)
    plane._lease_until = time.monotonic() + 3600  # the leader, without a database
    release, service_done = threading.Event(), threading.Event()
    processed = []

    def process(key):
        if key.startswith("task:"):
            release.wait(30)
        else:
            service_done.set()
        processed.append(key)

    plane.process = process
    assert plane.queue_for("task:1") is plane.queue_for("container:unix://|abc") is plane.agent_queue
    assert plane.queue_for("service:1") is plane.queue_for("placement") is plane.scheduler_queue
    workers = [threading.Thread(target=plane._work, args=(queue,), daemon=True)
               for queue in (plane.agent_queue, plane.agent_queue, plane.scheduler_queue)]
    for worker in workers:
        worker.start()
    try:
        for pk in range(5):
            plane.enqueue(f"task:{pk}")
        plane.enqueue("service:1")
        assert service_done.wait(10), "the service key waited behind the task keys"
        assert processed == ["service:1"]  # every task pass is still held
    finally:
        release.set()
        for queue in plane.queues:
            queue.shutdown()
        for worker in workers:
            worker.join(10)


@pytest.mark.django_db(transaction=True)
def test_it_elects_one_leader_and_hands_over_on_stop(settings, lab_id):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "DOCKER_URL": "tcp://127.0.0.1:1"}
    first, second = ControlPlane(workers=1), ControlPlane(workers=1)
    first.start()
    second.start()
    try:
        assert first.is_leader and not second.is_leader
        assert Lease.objects.get(name=LEASE_NAME).holder == first.identity
        first.stop()
        second._renew_lease()
        assert second.is_leader
        assert Lease.objects.get(name=LEASE_NAME).holder == second.identity
    finally:
        first.stop()
        second.stop()


@pytest.mark.django_db(transaction=True)
def test_it_takes_over_an_expired_lease(settings, lab_id):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "DOCKER_URL": "tcp://127.0.0.1:1"}
    Lease.objects.create(name=LEASE_NAME, holder="dead-process", expires_at=timezone.now())
    plane = ControlPlane(workers=1)
    plane.start()
    try:
        assert plane.is_leader
        # The engine does not answer: the warm pool waits PROVISIONING, to be sized when it boots.
        assert ContainerInstance.objects.filter(status="PROVISIONING").count() == settings.FARGATE_LAB["FLEET_INSTANCES"]
    finally:
        plane.stop()


def test_it_explains_the_command(capsys):
    with pytest.raises(SystemExit):
        call_command("controlplane", "--help")
    assert "control plane" in capsys.readouterr().out.lower()


@pytest.mark.django_db(transaction=True)
@pytest.mark.sqlite
def test_its_lease_renewal_takes_urgent_turns_at_the_write_lock(settings, lab_id, monkeypatch):
    """Background writes wait behind the API's urgent ones; a late renewal would stop the lab acting."""
    from datetime import timedelta

    from orchestrator.state_database.base import WRITE_LOCK

    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "DOCKER_URL": "tcp://127.0.0.1:1"}
    Lease.objects.create(name=LEASE_NAME, holder="another-process", expires_at=timezone.now() + timedelta(minutes=5))
    asked = []
    acquire = WRITE_LOCK.acquire
    monkeypatch.setattr(WRITE_LOCK, "acquire",
                        lambda timeout=-1, urgent=False: asked.append(urgent) or acquire(timeout, urgent))
    plane = ControlPlane(workers=1)
    plane._renew_lease()
    assert not plane.is_leader  # the other process holds it: the conditional UPDATE claimed nothing
    assert asked == [True]
    assert Lease.objects.get(name=LEASE_NAME).holder == "another-process"
