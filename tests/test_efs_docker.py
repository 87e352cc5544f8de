"""EFS volumes on real Docker: two tasks of one account share a file system's files, another
account naming the same fileSystemId sees none of them, a rootDirectory mounts that directory
(with what the file system held there), readOnly holds, and the volumes are the lab's own."""
import docker
import pytest

from orchestrator import efs
from orchestrator.docker_engine import LABEL_ACCOUNT, LABEL_EFS_FILE_SYSTEM, LABEL_LAB, LABEL_TASK_ID
from orchestrator.frontend import call
from orchestrator.models import Account, Cluster, Task

pytestmark = pytest.mark.docker

FS = "fs-0123456789abcdef0"
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}


def register(account, image, family, root="/", read_only=False):
    call(account, "RegisterTaskDefinition", {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512",
        "volumes": [{"name": "files", "efsVolumeConfiguration": {"fileSystemId": FS, "rootDirectory": root}}],
        "containerDefinitions": [{
            "name": "app", "image": image, "essential": True, "entryPoint": ["sh", "-c"],
            "command": ["trap 'exit 0' TERM; while true; do sleep 0.2; done"],
            "mountPoints": [{"sourceVolume": "files", "containerPath": "/mnt/efs", "readOnly": read_only}]}]})


def run(account, cluster, family, wait_until):
    arn = call(account, "RunTask", {"cluster": cluster.name, "taskDefinition": family,
                                    "launchType": "FARGATE", "networkConfiguration": NETWORK})["tasks"][0]["taskArn"]
    task = Task.objects.get(task_id=arn.rsplit("/", 1)[1])
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status in (Task.RUNNING, Task.STOPPED), 90,
               message=f"task of {family} to run")
    task.refresh_from_db()
    assert task.last_status == Task.RUNNING, task.stopped_reason
    return task


def shell(client, lab_id, task, script):
    container = client.containers.get(shell_container_id(client, lab_id, task))
    code, output = container.exec_run(["sh", "-c", script])
    return code, output.decode().strip()


def alice_and_bob(lab_rows):
    """alice (the default account, lab_rows' cluster) and bob (a cluster of the same name), each
    with the definition "root" mounting fs-0123456789abcdef0 at /mnt/efs."""
    alice, image = lab_rows.account, lab_rows.image
    bob = Account.objects.create(account_id="000000000002", name="bob")
    bobs = Cluster.objects.create(account=bob, name=lab_rows.cluster.name)
    for account in (alice, bob):
        register(account, image, "root")
    return alice, bob, bobs


def test_one_accounts_tasks_share_a_file_system_and_another_account_does_not_see_it(
        control_plane, lab_rows, docker_engine, lab_id, wait_until):
    client, image = docker.from_env(), lab_rows.image
    alice, bob, bobs = alice_and_bob(lab_rows)
    register(alice, image, "reader", read_only=True)
    register(alice, image, "uploads", root="/data/uploads")

    writer = run(alice, lab_rows.cluster, "root", wait_until)
    assert shell(client, lab_id, writer, "echo from-alice > /mnt/efs/note && mkdir -p /mnt/efs/data/uploads && "
                                         "echo before > /mnt/efs/data/uploads/first") == (0, "")

    reader = run(alice, lab_rows.cluster, "reader", wait_until)
    assert shell(client, lab_id, reader, "cat /mnt/efs/note") == (0, "from-alice")
    code, output = shell(client, lab_id, reader, "echo no > /mnt/efs/other")
    assert code != 0 and "Read-only file system" in output

    stranger = run(bob, bobs, "root", wait_until)
    assert shell(client, lab_id, stranger, "ls -A /mnt/efs") == (0, "")
    assert shell(client, lab_id, stranger, "echo from-bob > /mnt/efs/note") == (0, "")
    assert shell(client, lab_id, writer, "cat /mnt/efs/note") == (0, "from-alice")

    # rootDirectory: that directory, with what the file system already held there, and nothing above it.
    uploads = run(alice, lab_rows.cluster, "uploads", wait_until)
    assert shell(client, lab_id, uploads, "ls -A /mnt/efs; cat /mnt/efs/first") == (0, "first\nbefore")
    assert shell(client, lab_id, uploads, "echo after > /mnt/efs/second") == (0, "")
    later = run(alice, lab_rows.cluster, "root", wait_until)
    assert shell(client, lab_id, later, "cat /mnt/efs/data/uploads/second /mnt/efs/note") == (0, "after\nfrom-alice")

    # The volumes are the lab's, one set per account, named by account, region and file system.
    volumes = {v.name: v.attrs["Labels"] for v in client.volumes.list(filters={"label": f"{LABEL_LAB}={lab_id}"})}
    assert set(volumes) == {
        efs.volume_name(lab_id, alice.account_id, "us-east-1", FS),
        efs.volume_name(lab_id, alice.account_id, "us-east-1", FS, "/data/uploads"),
        efs.volume_name(lab_id, bob.account_id, "us-east-1", FS)}
    assert all(labels[LABEL_EFS_FILE_SYSTEM] == FS for labels in volumes.values())
    owners = sorted(labels[LABEL_ACCOUNT] for labels in volumes.values())
    assert owners == sorted([bob.account_id, alice.account_id, alice.account_id])
    mounts = client.containers.get(shell_container_id(client, lab_id, later)).attrs["Mounts"]
    assert {(m["Type"], m["Name"], m["Destination"]) for m in mounts} == {
        ("volume", efs.volume_name(lab_id, alice.account_id, "us-east-1", FS), "/mnt/efs"),
        ("volume", efs.volume_name(lab_id, alice.account_id, "us-east-1", FS, "/data/uploads"),
         "/mnt/efs/data/uploads")}
    assert not [c for c in client.containers.list(all=True, filters={"label": f"{efs.LABEL_HELPER}=efs"})
                if c.labels.get(LABEL_LAB) == lab_id]


def shell_container_id(client, lab_id, task):
    [container] = client.containers.list(filters={"label": [f"{LABEL_LAB}={lab_id}",
                                                             f"{LABEL_TASK_ID}={task.task_id}"]})
    return container.id


def test_resetting_an_account_removes_its_file_systems_and_no_one_elses(
        control_plane, lab_rows, docker_engine, lab_id, wait_until):
    from orchestrator.account_reset import reset_account

    client = docker.from_env()
    alice, bob, bobs = alice_and_bob(lab_rows)
    register(alice, lab_rows.image, "uploads", root="/uploads")
    run(alice, lab_rows.cluster, "root", wait_until)
    run(alice, lab_rows.cluster, "uploads", wait_until)
    bobs_task = run(bob, bobs, "root", wait_until)
    assert shell(client, lab_id, bobs_task, "echo kept > /mnt/efs/note") == (0, "")

    done = reset_account(alice, caller="test")

    assert done["volumes"] == 2
    left = [v.name for v in client.volumes.list(filters={"label": f"{LABEL_LAB}={lab_id}"})]
    assert left == [efs.volume_name(lab_id, bob.account_id, "us-east-1", FS)]
    assert shell(client, lab_id, bobs_task, "cat /mnt/efs/note") == (0, "kept")
