"""The warm pool of task sandboxes (``orchestrator.sandbox_pool``): pause containers made ahead,
whose network a task's containers join; their ports published by the lab's forwarder."""
import http.client

import pytest

from orchestrator import port_forwarder, sandbox_pool
from orchestrator.agent import ContainerSeen, ContainerWanted, ForwardPorts, TaskWanted, network_name, plan_task
from orchestrator.models import Task


def test_it_forwards_the_ports_of_a_running_sandboxed_task_nobody_forwards():
    wanted = TaskWanted("RUNNING", "RUNNING", [ContainerWanted("web")], has_instance=True, network="n",
                        unforwarded=True)
    assert plan_task(wanted, [ContainerSeen("abc", "web", "running")]) == [ForwardPorts()]
    wanted.unforwarded = False
    assert plan_task(wanted, [ContainerSeen("abc", "web", "running")]) == []


class FakeEngine:
    is_local = True


class FakeTask:
    container_instance_id = 1
    service_id = None
    service = None


def test_it_pools_only_tasks_a_joined_container_can_serve(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "SANDBOX_POOL": 2}
    web = {"name": "web", "portMappings": [{"containerPort": 80}]}
    assert sandbox_pool.eligible(FakeTask(), FakeEngine(), [web])
    assert not sandbox_pool.eligible(FakeTask(), FakeEngine(), [
        {"name": "dns", "portMappings": [{"containerPort": 53, "protocol": "udp"}]}])
    assert not sandbox_pool.eligible(FakeTask(), FakeEngine(), [web, {**web, "name": "web2"}])  # one port, twice
    assert not sandbox_pool.eligible(FakeTask(), FakeEngine(), [
        {**web, "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}]}])
    remote = FakeEngine()
    remote.is_local = False
    assert not sandbox_pool.eligible(FakeTask(), remote, [web])
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "SANDBOX_POOL": 0}
    assert not sandbox_pool.eligible(FakeTask(), FakeEngine(), [web])


def get(port, path="/"):
    """The status and body of an HTTP GET to 127.0.0.1:port."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def answers(port):
    try:
        return get(port)[0] == 200
    except OSError:
        return False


def wait_running(task, wait_until, timeout=30):
    """Wait for the task to be RUNNING; failing, say what its agent recorded."""
    from orchestrator.models import Activity
    try:
        wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", timeout, message="task RUNNING")
    except BaseException:
        task.refresh_from_db()
        steps = [f"{a.component} {a.action}: {a.message}" for a in Activity.objects.filter(object_arn=task.arn).order_by("id")]
        pytest.fail(f"task {task.last_status}/{task.desired_status} {task.stopped_reason}: " + "\n".join(steps))


def pooled(settings, count=2):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "SANDBOX_POOL": count}


def fill_pool(lab_rows, docker_engine, wait_until):
    """Start one task (the pool's first, which starts without a sandbox) and wait for a full pool."""
    first = lab_rows.run_task()
    wait_running(first, wait_until)
    network = network_name(docker_engine.lab, lab_rows.account.account_id, lab_rows.cluster.name)
    wait_until(lambda: len(sandbox_pool.pool().free(docker_engine, network)) == sandbox_pool.size(), 30,
               message="the pool to fill")
    return first, network


def sandboxed_task(settings, lab_rows, docker_engine, wait_until):
    """(the pool's first task, the network, a task RUNNING in a sandbox of the full pool)."""
    pooled(settings)
    first, network = fill_pool(lab_rows, docker_engine, wait_until)
    task = lab_rows.run_task()
    wait_running(task, wait_until)
    task.refresh_from_db()
    assert task.sandbox_id
    return first, network, task


@pytest.mark.docker
def test_a_task_joins_a_ready_sandbox_gets_its_ip_and_its_port_answers(
        settings, control_plane, lab_rows, docker_engine, wait_until):
    pooled(settings)
    first, network = fill_pool(lab_rows, docker_engine, wait_until)
    assert not Task.objects.get(pk=first.pk).sandbox_id  # the pool was empty when it started
    ready = sandbox_pool.pool().free(docker_engine, network)

    task = lab_rows.run_task()
    wait_running(task, wait_until)
    task.refresh_from_db()
    assert task.sandbox_id == ready[0]  # the oldest ready sandbox, now in use
    sandbox = docker_engine.inspect(task.sandbox_id)
    assert sandbox["State"]["Running"]
    assert sandbox["Config"]["Labels"][sandbox_pool.LABEL_SANDBOX] == "pause"
    assert sandbox["HostConfig"]["NanoCpus"] == sandbox_pool.PAUSE_NANO_CPUS
    assert sandbox["HostConfig"]["Memory"] == sandbox_pool.PAUSE_MEMORY
    assert sandbox["HostConfig"]["PidsLimit"] == sandbox_pool.PAUSE_PIDS
    assert sandbox["HostConfig"]["LogConfig"]["Config"]["max-size"] == "1m"
    assert task.private_ip == sandbox["NetworkSettings"]["Networks"][network]["IPAddress"]
    container = docker_engine.inspect(task.containers.get().docker_id)
    assert container["HostConfig"]["NetworkMode"] == f"container:{task.sandbox_id}"
    assert container["HostConfig"]["NanoCpus"] == 250_000_000  # the task's own limits, as before

    binding, = task.containers.get().network_bindings
    assert binding["bindIP"] == "127.0.0.1" and binding["containerPort"] == 80 and binding["hostPort"] > 0
    wait_until(lambda: answers(binding["hostPort"]), 20, message="the task's port to answer")
    status, body = get(binding["hostPort"])
    assert status == 200 and task.arn in body  # the demo page names the task that serves it

    # The pool refills in the background: the claimed sandbox is not handed out again.
    wait_until(lambda: len(sandbox_pool.pool().free(docker_engine, network)) == 2, 30, message="the pool to refill")
    assert task.sandbox_id not in sandbox_pool.pool().free(docker_engine, network)
    other = lab_rows.run_task()
    wait_running(other, wait_until)
    assert Task.objects.get(pk=other.pk).sandbox_id not in ("", task.sandbox_id)

    # Stopped, the task takes its sandbox and its forwarded port along.
    Task.objects.filter(pk=task.pk).update(desired_status="STOPPED")
    control_plane.enqueue(f"task:{task.pk}")
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 40, message="task STOPPED")
    assert not [c for c in docker_engine.list_containers() if c["id"] == task.sandbox_id]
    assert not answers(binding["hostPort"])


@pytest.mark.docker
def test_a_restarted_lab_adopts_free_sandboxes_forwards_again_and_removes_what_nobody_owns(
        settings, control_plane, lab_rows, docker_engine, wait_until):
    _, network, task = sandboxed_task(settings, lab_rows, docker_engine, wait_until)
    host_port = task.containers.get().network_bindings[0]["hostPort"]
    wait_until(lambda: len(sandbox_pool.pool().free(docker_engine, network)) == 2, 30, message="the pool to refill")
    free = set(sandbox_pool.pool().free(docker_engine, network))

    # A new process: no pool in memory, no listener forwards the task's port.
    control_plane.current.stop()
    sandbox_pool.reset()
    port_forwarder.forwarder().close_prefix("")
    wait_until(lambda: not answers(host_port), 10, message="the forwarder to close")
    control_plane.restart()
    wait_until(lambda: set(sandbox_pool.pool().free(docker_engine, network)) == free, 30,
               message="the free sandboxes adopted")
    wait_until(lambda: answers(host_port), 30, message="the task's port forwarded again, on the same host port")
    assert Task.objects.get(pk=task.pk).containers.get().network_bindings[0]["hostPort"] == host_port

    # A free sandbox that stopped (a Docker restart stops them all) is removed and replaced.
    dead = sorted(free)[0]
    docker_engine.kill(dead)
    wait_until(lambda: dead not in {c["id"] for c in docker_engine.list_containers()}, 30,
               message="the stopped sandbox removed")
    wait_until(lambda: len(sandbox_pool.pool().free(docker_engine, network)) == 2, 30, message="the pool to refill")

    # Its cluster deleted, a pool's sandboxes go with it.
    lab_rows.cluster.__class__.objects.filter(pk=lab_rows.cluster.pk).update(status="INACTIVE")
    wait_until(lambda: not [c for c in docker_engine.list_containers() if sandbox_pool.is_sandbox(c)
                            and c["id"] != task.sandbox_id], 30, message="the free sandboxes removed")
    assert task.sandbox_id in {c["id"] for c in docker_engine.list_containers()}  # in use: it stays


@pytest.mark.docker
@pytest.mark.browser
def test_the_task_page_shows_the_pause_container_as_the_pod_sandbox(
        settings, control_plane, lab_rows, docker_engine, wait_until, page, live_lab_server):
    from playwright.sync_api import expect

    first, _, task = sandboxed_task(settings, lab_rows, docker_engine, wait_until)
    page.goto(f"{live_lab_server.url}/tasks/{task.task_id}/")
    expect(page.locator("[data-field=sandbox]")).to_contain_text(task.sandbox_id[:12])
    explain = page.locator("[data-field=sandbox_explain]")
    expect(explain).to_contain_text("pause container")
    expect(explain).to_contain_text("Pod sandbox")
    expect(explain).to_contain_text("crictl pods")

    page.goto(f"{live_lab_server.url}/tasks/{first.task_id}/")  # started before the pool was ready
    expect(page.locator("[data-field=sandbox]")).to_have_text("—")
    expect(page.locator("[data-field=sandbox_explain]")).to_contain_text("No Pod sandbox")


@pytest.mark.docker
def test_a_task_whose_claimed_sandbox_had_stopped_starts_without_one(
        settings, control_plane, lab_rows, docker_engine, wait_until, monkeypatch):
    pooled(settings)
    _, network = fill_pool(lab_rows, docker_engine, wait_until)
    monkeypatch.setattr(sandbox_pool.pool(), "reconcile", lambda engine: [])  # no resync looks first
    dead = sandbox_pool.pool().free(docker_engine, network)[0]
    docker_engine.kill(dead)
    wait_until(lambda: not docker_engine.inspect(dead)["State"]["Running"], 10, message="the sandbox to stop")
    task = lab_rows.run_task()
    wait_running(task, wait_until)
    task.refresh_from_db()
    assert task.sandbox_id == ""  # Docker set up its network, as without a pool
    assert dead not in {c["id"] for c in docker_engine.list_containers()}
    port = task.containers.get().network_bindings[0]["hostPort"]
    wait_until(lambda: answers(port), 20, message="the task's port to answer")
