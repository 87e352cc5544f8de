"""volumesFrom on real Docker: a container reads what its source wrote in the task's bind mount,
at the source's path, cannot write with readOnly (can without), sees the source image's VOLUME
with its files, and the task's volumes go when it stops."""
import docker
import pytest

from orchestrator import bind_mounts, volumes_from
from orchestrator.docker_engine import LABEL_LAB
from orchestrator.frontend import call
from orchestrator.models import Task
from tests.test_bind_mounts_docker import container, run, seeded_image, shell  # noqa: F401 (a fixture)

pytestmark = pytest.mark.docker


def test_a_container_mounts_its_sources_volumes(control_plane, lab_rows, docker_engine, lab_id, seeded_image,
                                                wait_until):
    client, account = docker.from_env(), lab_rows.account
    call(account, "RegisterTaskDefinition", {
        "family": "scratch", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "volumes": [{"name": "scratch"}],
        "containerDefinitions": [
            container("writer", [{"sourceVolume": "scratch", "containerPath": "/scratch"}]),
            {**container("reader", []), "volumesFrom": [{"sourceContainer": "writer", "readOnly": True}]},
            {**container("helper", []), "volumesFrom": [{"sourceContainer": "writer"}]}]})
    task = run(account, lab_rows.cluster, wait_until)

    assert shell(client, lab_id, task, "writer", "echo hello > /scratch/note; echo mine > /seed/file") == (0, "")
    assert shell(client, lab_id, task, "reader", "cat /scratch/note /seed/file") == (0, "hello\nmine")
    code, output = shell(client, lab_id, task, "reader", "echo no > /scratch/other")
    assert code != 0 and "Read-only file system" in output
    code, output = shell(client, lab_id, task, "reader", "echo no > /seed/other")
    assert code != 0 and "Read-only file system" in output
    assert shell(client, lab_id, task, "helper", "echo yes > /scratch/other; cat /seed/file") == (0, "mine")
    assert shell(client, lab_id, task, "writer", "cat /scratch/other") == (0, "yes")

    ours = {bind_mounts.volume_name(lab_id, task.task_id, name)
            for name in ("scratch", volumes_from.image_volume("writer", "/seed"))}
    assert {v.name for v in client.volumes.list(filters={"label": f"{LABEL_LAB}={lab_id}"})} >= ours
    call(account, "StopTask", {"cluster": lab_rows.cluster.name, "task": task.task_id})
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.STOPPED, 60, message="the task to stop")
    assert not ours & {v.name for v in client.volumes.list(filters={"label": f"{LABEL_LAB}={lab_id}"})}


def test_the_source_images_files_are_copied_into_its_shared_volume(
        control_plane, lab_rows, docker_engine, lab_id, seeded_image, wait_until):
    """The source's image VOLUME, which no mount point covers, starts with the image's files."""
    client, account = docker.from_env(), lab_rows.account
    call(account, "RegisterTaskDefinition", {
        "family": "scratch", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "containerDefinitions": [
            container("app", []), {**container("side", []), "volumesFrom": [{"sourceContainer": "app"}]}]})
    task = run(account, lab_rows.cluster, wait_until)
    assert shell(client, lab_id, task, "side", "cat /seed/file") == (0, "seeded")
