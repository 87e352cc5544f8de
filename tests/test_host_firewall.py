"""The host firewall: a task reaches the lab's machine only on listener ports (issue 10, finding 5).

The probe reached the host through its bridge's gateway. Services on 127.0.0.1 are out of
reach anyway; here the host serves on 0.0.0.0, as a classroom lab (HOST=0.0.0.0) does.
"""
import socket
import subprocess
import threading

import pytest

from orchestrator import bus, host_firewall
from orchestrator.models import Listener, LoadBalancer, Task
from tests.support.common import free_port


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
