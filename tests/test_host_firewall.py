"""The host firewall: a task reaches the lab's machine only on listener ports (issue 10, finding 5).

The probe reached the host through its bridge's gateway. Services on 127.0.0.1 are out of
reach anyway; here the host serves on 0.0.0.0, as a classroom lab (HOST=0.0.0.0) does.
"""
import re
import socket
import subprocess
import threading

import pytest

from orchestrator import bus, host_firewall
from orchestrator.models import Listener, LoadBalancer, Task
from tests.support.common import free_port
from tests.support.api import NETWORK


def test_the_rules_let_replies_and_listener_ports_through_and_reject_the_rest():
    chain = host_firewall.chain_name("lab")
    assert len(chain) <= 28 and chain == host_firewall.chain_name("lab") != host_firewall.chain_name("other")
    lines = host_firewall.rules(chain, ["br-2", "br-1", "br-1"], [8080, *range(9000, 9016)])
    assert lines[:4] == [
        f"-A {chain} -i br-1 -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
        f"-A {chain} -i br-1 -p tcp -m multiport --dports 8080,{','.join(map(str, range(9000, 9014)))} -j RETURN",
        f"-A {chain} -i br-1 -p tcp -m multiport --dports 9014,9015 -j RETURN",
        f"-A {chain} -i br-1 -p tcp -j REJECT --reject-with tcp-reset",
    ]
    assert lines[4] == f"-A {chain} -i br-1 -j REJECT --reject-with icmp-port-unreachable"
    assert len(lines) == 10 and all("-i br-2" in line for line in lines[5:])
    assert host_firewall.rules(chain, [], [80]) == []


class HostServer:
    """A TCP server on 0.0.0.0 of this machine that greets and closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", free_port()))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"hello from the host\n")
            conn.close()


@pytest.fixture
def host_servers():
    servers = [HostServer(), HostServer()]
    yield servers
    for server in servers:
        server.sock.close()


def iptables_rules():
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


@pytest.mark.docker
def test_a_task_reaches_the_host_only_on_listener_ports(control_plane, lab_rows, docker_client, host_servers,
                                                        lab_id, wait_until):
    lab_port, listener_port = host_servers[0].port, host_servers[1].port
    task = lab_rows.run_task()
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "RUNNING", 30, message="task RUNNING")
    (container,) = docker_client.containers.list(filters={"label": f"fargatelab.task-id={Task.objects.get(pk=task.pk).task_id}"})
    gateway = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["Gateway"]
    docker0 = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True).stdout.split()[3].split("/")[0]

    def reaches(address, port):
        result = container.exec_run(["sh", "-c", f"echo x | nc -w 3 {address} {port}"])
        return b"hello from the host" in result.output

    chain = host_firewall.chain_name(lab_id)
    assert f"-A INPUT -m comment --comment \"fargatelab {lab_id}" in iptables_rules()
    assert not reaches(gateway, lab_port)  # a classroom lab's API and dashboard
    assert not reaches(docker0, lab_port)  # the host's other addresses too
    assert not reaches(gateway, listener_port)  # no listener there yet
    # A listener opens its port to tasks at once: students' tasks call each other through listeners.
    lb = LoadBalancer.objects.create(account=lab_rows.account, name="web-lb")
    listener = Listener.objects.create(load_balancer=lb, port=listener_port, default_actions=[])
    bus.publish("listener", listener.pk)
    wait_until(lambda: reaches(gateway, listener_port), 10, interval=0.2, message="the listener port open to the task")
    assert Task.objects.get(pk=task.pk).last_status == "RUNNING"

    control_plane.stop()
    assert chain not in iptables_rules()  # nothing of the lab's is left in the host's firewall
    assert reaches(gateway, lab_port)  # the rules were what kept the task out


@pytest.mark.docker
def test_a_classroom_labs_tasks_cannot_reach_its_api_through_their_gateway(tmp_path, docker_client, lab_demo_image):
    """A real classroom lab (HOST=0.0.0.0): its API answers on every address of the machine,
    but not to its own tasks; its chain goes when it stops."""
    import uuid

    from tests.support.lab import LabProcess, poll, remove_lab_objects

    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", extra_env={"HOST": "0.0.0.0"})
    for args in (["disablekey", "test"], ["shell", "-c", "from django.contrib.auth.models import User; "
                                          "User.objects.create_superuser('admin', password='a long classroom password')"]):
        result = lab.manage(*args)
        assert result.returncode == 0, result.stderr
    student = lab.manage("addstudent", "teacher", "--password", "pw").stdout
    key = dict(re.findall(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)=(\S+)", student))
    try:
        lab.start()
        ecs = lab.client(aws_access_key_id=key["ACCESS_KEY_ID"], aws_secret_access_key=key["SECRET_ACCESS_KEY"])
        ecs.create_cluster(clusterName="demo")
        ecs.register_task_definition(family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                                     cpu="256", memory="512", containerDefinitions=[
                                         {"name": "web", "image": "fargate-lab/demo:latest", "essential": True}])
        arn = ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE", **NETWORK)["tasks"][0]["taskArn"]
        poll(lambda: ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
             message="the task RUNNING")
        (container,) = docker_client.containers.list(filters={"label": f"fargatelab.task-arn={arn}"})
        gateway = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["Gateway"]

        def answers_from_task(port):
            request = f"printf 'GET /accounts/login/ HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {gateway} {port}"
            return b"HTTP/1.1 200" in container.exec_run(["sh", "-c", request]).output

        import requests

        # The lab answers at the gateway's address (it listens on 0.0.0.0) — only not to its tasks.
        assert requests.get(f"http://{gateway}:{lab.port}/accounts/login/", timeout=5).status_code == 200
        assert not answers_from_task(lab.port)  # the probe's way in: the lab's API and dashboard
        assert host_firewall.chain_name(lab.lab_id) in iptables_rules()
    finally:
        lab.stop()
    assert host_firewall.chain_name(lab.lab_id) not in iptables_rules()
    try:
        assert container.exec_run(["true"]).exit_code == 0  # the task outlived the lab, as it should
    finally:
        remove_lab_objects(docker_client, lab.lab_id)
