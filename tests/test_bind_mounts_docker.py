"""Fargate's bind mounts on real Docker: a task's containers share a volume without configuration
(readOnly holds), another task of the same definition has its own, an image's VOLUME at the
containerPath is copied in, and the volume goes when its task stops."""
import io

import docker
import pytest

from orchestrator import bind_mounts
from orchestrator.docker_engine import LABEL_LAB, LABEL_TASK_ID
from orchestrator.frontend import call
from orchestrator.models import Task
from tests.test_efs_docker import NETWORK

pytestmark = pytest.mark.docker

SEEDED = "fargate-lab/test-seeded:latest"
SERVE = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


@pytest.fixture(scope="module")
def seeded_image(demo_image):
    """The demo image with a VOLUME /seed that holds a file (built offline, FROM the demo image)."""
    dockerfile = f"FROM {demo_image}\nRUN mkdir /seed && echo seeded > /seed/file\nVOLUME /seed\n"
    docker.from_env().images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=SEEDED, rm=True)
    return SEEDED


def container(name, mount_points):
    return {"name": name, "image": SEEDED, "essential": True, "entryPoint": ["sh", "-c"], "command": [SERVE],
            "mountPoints": mount_points}


def run(account, cluster, wait_until):
    arn = call(account, "RunTask", {"cluster": cluster.name, "taskDefinition": "scratch",
                                    "launchType": "FARGATE", "networkConfiguration": NETWORK})["tasks"][0]["taskArn"]
    task = Task.objects.get(task_id=arn.rsplit("/", 1)[1])
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status in (Task.RUNNING, Task.STOPPED), 90,
               message="the task to run")
    task.refresh_from_db()
    assert task.last_status == Task.RUNNING, task.stopped_reason
    return task


def container_of(client, lab_id, task, name):
    [found] = client.containers.list(filters={"label": [
        f"{LABEL_LAB}={lab_id}", f"{LABEL_TASK_ID}={task.task_id}", f"fargatelab.container-name={name}"]})
    return found


def shell(client, lab_id, task, name, script):
    code, output = container_of(client, lab_id, task, name).exec_run(["sh", "-c", script])
    return code, output.decode().strip()


def test_a_tasks_containers_share_its_bind_mounts_which_go_with_it(
        control_plane, lab_rows, docker_engine, lab_id, seeded_image, wait_until):
    client, account = docker.from_env(), lab_rows.account
    call(account, "RegisterTaskDefinition", {
        "family": "scratch", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "volumes": [{"name": "scratch", "host": {}}, {"name": "seed"}],
        "containerDefinitions": [
            container("writer", [{"sourceVolume": "scratch", "containerPath": "/scratch"},
                                 {"sourceVolume": "seed", "containerPath": "/seed"}]),
            container("reader", [{"sourceVolume": "scratch", "containerPath": "/shared", "readOnly": True},
                                 {"sourceVolume": "seed", "containerPath": "/elsewhere"}])]})
    first = run(account, lab_rows.cluster, wait_until)
    assert shell(client, lab_id, first, "writer", "echo hello > /scratch/note; cat /seed/file") == (0, "seeded")
    assert shell(client, lab_id, first, "reader", "cat /shared/note; ls -A /elsewhere") == (0, "hello\nfile")
    code, output = shell(client, lab_id, first, "reader", "echo no > /shared/other")
    assert code != 0 and "Read-only file system" in output

    second = run(account, lab_rows.cluster, wait_until)
    assert shell(client, lab_id, second, "writer", "ls -A /scratch") == (0, "")
    mounts = container_of(client, lab_id, second, "writer").attrs["Mounts"]
    assert {m["Name"] for m in mounts} == {bind_mounts.volume_name(lab_id, second.task_id, name)
                                           for name in ("scratch", "seed")}

    call(account, "StopTask", {"cluster": lab_rows.cluster.name, "task": first.task_id})
    wait_until(lambda: Task.objects.get(pk=first.pk).last_status == Task.STOPPED, 60, message="the task to stop")
    left = {v.name for v in client.volumes.list(filters={"label": f"{LABEL_LAB}={lab_id}"})}
    assert left == {bind_mounts.volume_name(lab_id, second.task_id, name) for name in ("scratch", "seed")}


def test_an_images_volume_no_mount_covers_goes_with_its_container(
        control_plane, lab_rows, docker_engine, lab_id, seeded_image, wait_until):
    """Docker makes an anonymous volume for the image's VOLUME /seed; removing the task's
    container removes it too, instead of leaving one volume behind per task run."""
    client, account = docker.from_env(), lab_rows.account
    call(account, "RegisterTaskDefinition", {
        "family": "scratch", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [container("app", [])]})
    task = run(account, lab_rows.cluster, wait_until)
    app = container_of(client, lab_id, task, "app")
    [anonymous] = [m["Name"] for m in app.attrs["Mounts"] if m["Type"] == "volume" and m["Destination"] == "/seed"]
    assert client.volumes.get(anonymous)

    call(account, "StopTask", {"cluster": lab_rows.cluster.name, "task": task.task_id})

    def removed():
        try:
            client.containers.get(app.id)
        except docker.errors.NotFound:
            return True
        return False

    wait_until(removed, 90, message="the task's container to be removed")
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(anonymous)
