"""Several server processes on one PostgreSQL state database (issue 13, item 2): three
``manage.py lab`` processes of one lab (one lab id, one database, each on its own port). A
page served by one process follows a change made through another; killing the leader moves
the control plane to another process within the lease, and no task is lost or duplicated."""
import os
import signal
import subprocess
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.support.browser import admin_page, wait_live
from tests.support.lab import LabProcess, lab_containers, lab_database, poll, remove_lab_objects
from tests.support.api import FARGATE

pytestmark = [pytest.mark.postgres, pytest.mark.docker, pytest.mark.browser]

LEASE_SECONDS = 5.0
WEB = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                              "portMappings": [{"containerPort": 80, "protocol": "tcp"}]}],
}


@pytest.fixture
def three_processes(tmp_path, docker_client, lab_demo_image):
    """Three server processes of one lab on one database, started one after another."""
    lab_id = f"test-{uuid.uuid4().hex[:8]}"
    shared = {"DATABASE_URL": lab_database(lab_id), "DJANGO_SECRET_KEY": uuid.uuid4().hex,
              "FARGATE_LAB_LEASE_SECONDS": str(LEASE_SECONDS)}
    processes = []
    try:
        for n in range(3):
            workdir = tmp_path / f"process-{n}"
            workdir.mkdir()
            processes.append(LabProcess(workdir, lab_id, extra_env=shared).start())
        yield processes
    finally:
        for process in processes:
            if process.proc is not None and process.proc.poll() is None:
                process.stop()
        remove_lab_objects(docker_client, lab_id)


def leader_of(processes):
    """The process whose control plane holds the lease now (None while none does)."""
    rows = processes[0].query("SELECT holder FROM orchestrator_lease WHERE name = 'controlplane' "
                              "AND expires_at > now()")
    pids = {int(holder.split(":")[1]) for (holder,) in rows if holder}
    return next((process for process in processes if process.proc and process.proc.pid in pids), None)


def running(ecs):
    """The RUNNING tasks of service web, by ARN."""
    arns = ecs.list_tasks(cluster="demo", serviceName="web", desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"] if arns else []
    return sorted(task["taskArn"] for task in tasks if task["lastStatus"] == "RUNNING")


def test_a_page_follows_another_process_and_the_leader_hands_over_without_losing_a_task(
        three_processes, docker_client, browser):
    leader = poll(lambda: leader_of(three_processes), message="one control plane to lead")
    writer, viewer = [process for process in three_processes if process is not leader]
    ecs = writer.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**WEB)
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=2, **FARGATE)
    poll(lambda: len(running(ecs)) == 2, message="2 tasks RUNNING, started by the leader")

    # The viewer's page, on its own process, follows a change made through the writer.
    ((service_pk,),) = viewer.query("SELECT id FROM orchestrator_service WHERE name = 'web'")
    page = admin_page(browser, viewer.url, {"width": 1400, "height": 1000})
    try:
        page.goto(f"{viewer.url}/services/{service_pk}/")
        wait_live(page)
        page.evaluate("window.notReloaded = true")
        expect(page.locator("[data-count=running]")).to_have_text("2")
        ecs.update_service(cluster="demo", service="web", desiredCount=3)
        expect(page.locator("[data-count=desired]")).to_have_text("3")
        expect(page.locator("[data-count=running]")).to_have_text("3", timeout=60_000)
        assert page.evaluate("window.notReloaded") is True
    finally:
        page.context.close()
    before = running(ecs)
    containers = sorted(c.id for c in lab_containers(docker_client, writer.lab_id))
    assert len(before) == 3 and len(containers) == 3

    # Kill the leader outright (no lease released): another process takes over within the lease.
    killed_at = time.monotonic()
    os.killpg(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait()
    leader.proc = None
    survivors = [writer, viewer]
    successor = poll(lambda: leader_of(survivors), timeout=3 * LEASE_SECONDS, message="a successor to lead")
    took_over = time.monotonic() - killed_at
    # The old lease runs out after at most LEASE_SECONDS; a follower tries every third of it.
    assert took_over <= LEASE_SECONDS * 4 / 3 + 1.0, f"took over after {took_over:.1f} s"

    # The same three tasks run in the same three containers: none lost, none started twice,
    # also after the successor's own pass over the service (it resyncs everything on taking over).
    ecs = successor.client()
    ((since,),) = successor.query("SELECT now()")
    poll(lambda: successor.query(f"SELECT count(*) FROM orchestrator_reconcilepass WHERE service_id = {service_pk} "
                                 f"AND last_at > '{since.isoformat()}'")[0][0] > 0,
         message="the successor's pass over the service")
    assert running(ecs) == before
    assert sorted(c.id for c in lab_containers(docker_client, writer.lab_id)) == containers
    assert ecs.describe_services(cluster="demo", services=["web"])["services"][0]["runningCount"] == 3

    # The successor acts: a task killed behind the lab's back is replaced, once.
    victim = lab_containers(docker_client, writer.lab_id)[0]
    victim.kill()
    poll(lambda: len(running(ecs)) == 3 and victim.labels["fargatelab.task-arn"] not in running(ecs),
         timeout=60, message="the successor to replace the killed task")
    assert len(lab_containers(docker_client, writer.lab_id)) == 3


def test_workers_serve_the_lab_from_that_many_processes_with_one_leader(tmp_path, docker_client, lab_demo_image):
    """``make run WORKERS=2`` (``manage.py lab --workers 2``): two server processes, each with a
    control plane, one of them leading; whichever serves a request, the lab answers and acts."""
    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", args=["--workers", "2"],
                     extra_env={"FARGATE_LAB_LEASE_SECONDS": str(LEASE_SECONDS)})
    lab.start()
    try:
        def workers():
            """The supervisor's worker processes (multiprocessing's spawned children)."""
            found = subprocess.run(["pgrep", "-P", str(lab.proc.pid)], capture_output=True, text=True).stdout.split()
            return [int(pid) for pid in found if b"spawn_main" in open(f"/proc/{pid}/cmdline", "rb").read()]

        pids = poll(lambda: len(workers()) == 2 and workers(), message="two worker processes")
        holder = poll(lambda: lab.query("SELECT holder FROM orchestrator_lease WHERE name = 'controlplane' "
                                        "AND expires_at > now() AND holder <> ''"), message="a leader")[0][0]
        assert int(holder.split(":")[1]) in pids  # a worker leads, not the supervisor
        ecs = lab.client()
        ecs.create_cluster(clusterName="demo")
        ecs.register_task_definition(**WEB)
        for _ in range(6):  # requests land on either worker; each sees what the other wrote
            assert [c["clusterName"] for c in ecs.describe_clusters(clusters=["demo"])["clusters"]] == ["demo"]
        ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=1, **FARGATE)
        poll(lambda: len(running(ecs)) == 1, timeout=60, message="the leader to start the service's task")
        assert "served by 2 processes" in lab.log()
    finally:
        lab.stop()
        remove_lab_objects(docker_client, lab.lab_id)
