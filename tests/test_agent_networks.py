"""Cluster networks: one per account, cluster and region (two accounts' clusters named ``demo``
never share one), and the migration of tasks an older lab left on a network shared by name."""
import pytest

from orchestrator.agent import (
    NETWORK_NAME_MAX, ContainerSeen, ContainerWanted, MoveToNetwork, TaskWanted, network_name, plan_task,
)
from orchestrator.docker_engine import LABEL_CLUSTER, LABEL_LAB
from orchestrator.models import Account, Cluster, Target, TargetGroup, Task


def test_it_names_networks_by_account_region_and_cluster():
    alice = network_name("lab", "000000000001", "demo", "us-east-1")
    assert alice == "fargatelab-lab-000000000001-us-east-1-demo"
    assert alice == network_name("lab", "000000000001", "demo", "us-east-1")  # deterministic
    assert network_name("lab", "000000000002", "demo", "us-east-1") != alice
    assert network_name("lab", "000000000001", "demo", "eu-west-1") != alice


def test_it_keeps_long_names_short_unique_and_deterministic():
    long_a, long_b = "a" * 254 + "x", "a" * 254 + "y"
    name_a = network_name("lab", "000000000001", long_a, "us-east-1")
    assert len(name_a) <= NETWORK_NAME_MAX
    assert name_a != network_name("lab", "000000000001", long_b, "us-east-1")
    assert name_a == network_name("lab", "000000000001", long_a, "us-east-1")


def running(networks):
    return TaskWanted("RUNNING", "RUNNING", [ContainerWanted("web", True)], has_instance=True, network="own"), [
        ContainerSeen("abc", "web", "running", networks)]


def test_it_moves_a_task_off_a_network_that_is_not_its_own():
    assert plan_task(*running(("shared-by-name",))) == [MoveToNetwork(["abc"])]
    assert plan_task(*running(("own", "shared-by-name"))) == [MoveToNetwork(["abc"])]


def test_it_leaves_a_task_on_its_own_network():
    assert plan_task(*running(("own",))) == []


def legacy_network_name(lab, account_id, cluster_name, region_name=None):
    """The older labs' naming: the cluster name alone."""
    return f"fargatelab-{lab}-{cluster_name}"


def attached(docker_engine, container_id):
    """{network name: IP} of a container, read from Docker."""
    networks = docker_engine.inspect(container_id)["NetworkSettings"]["Networks"]
    return {name: n["IPAddress"] for name, n in networks.items()}


@pytest.mark.docker
def test_a_restart_moves_tasks_of_an_older_shared_network_onto_their_accounts_networks(
        control_plane, lab_rows, docker_engine, lab_id, wait_until, monkeypatch):
    import docker

    from orchestrator import agent

    # An older lab: networks named by cluster alone, without the account label.
    monkeypatch.setattr(agent, "network_name", legacy_network_name)
    monkeypatch.setattr(agent, "network_labels", lambda account_id, cluster: {LABEL_CLUSTER: cluster})
    control_plane.restart()
    bob = Account.objects.create(account_id="000000000002", name="bob")
    from tests.support.docker import LabRows

    bobs = LabRows(lab_rows.image)
    bobs.account = bob
    bobs.cluster = Cluster.objects.create(account=bob, name=lab_rows.cluster.name)
    tasks = [lab_rows.run_task(), bobs.run_task()]
    for task in tasks:
        wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 20, message="task RUNNING")
    legacy = legacy_network_name(lab_id, "", lab_rows.cluster.name)
    for task in tasks:
        assert set(attached(docker_engine, task.containers.get().docker_id)) == {legacy}
    # A target registered by hand at the old address follows the task.
    alice_task = Task.objects.get(pk=tasks[0].pk)
    group = TargetGroup.objects.create(account=lab_rows.account, name="tg", target_type="ip", port=80)
    Target.objects.create(target_group=group, target_id=alice_task.private_ip, port=80,
                          address=alice_task.private_ip, connect_port=80, task=alice_task)

    monkeypatch.undo()
    control_plane.restart()

    def moved(task):
        task = Task.objects.get(pk=task.pk)
        container = task.containers.get()
        own = network_name(lab_id, task.account.account_id, task.cluster.name)
        networks = attached(docker_engine, container.docker_id)
        return set(networks) == {own} and task.private_ip == networks[own] and task

    moved_tasks = [wait_until(lambda: moved(task), 20, message="the task on its account's network") for task in tasks]
    names = {network_name(lab_id, t.account.account_id, t.cluster.name) for t in moved_tasks}
    assert len(names) == 2
    client = docker.APIClient()
    for task in moved_tasks:
        container = task.containers.get()
        [binding] = container.network_bindings
        published = client.port(container.docker_id, 80)
        assert str(binding["hostPort"]) == published[0]["HostPort"]
        network = client.inspect_network(network_name(lab_id, task.account.account_id, task.cluster.name))
        assert network["Labels"][LABEL_LAB] == lab_id
        assert network["Labels"]["fargatelab.account"] == task.account.account_id
    target = Target.objects.get(target_group=group)
    assert target.target_id == target.address == moved_tasks[0].private_ip
    wait_until(lambda: not client.networks(names=[legacy]), 20, message="the old shared network removed")
