"""More than one Docker engine: a second real dockerd on this machine (its own socket, data
root, exec root, pidfile and bridge) backs some of the fleet's instances; ``spread`` over
availability zones (one per engine) runs a service's tasks on both. Also: engine URLs."""
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from orchestrator.capacity_manager import availability_zone, fleet_engines
from orchestrator.docker_engine import DockerEngine, EngineError, client_kwargs
from orchestrator.models import ContainerInstance, Service, Task
from tests.support.common import wait_until


def test_it_reads_engine_urls_of_every_kind(tmp_path):
    assert client_kwargs("unix:///run/two/docker.sock") == {"base_url": "unix:///run/two/docker.sock"}
    assert client_kwargs("ssh://lab@build-2") == {"base_url": "ssh://lab@build-2", "use_ssh_client": True}
    assert client_kwargs("tcp://10.0.0.2:2375") == {"base_url": "tcp://10.0.0.2:2375"}
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("-----")
    tls = client_kwargs(f"tcp://10.0.0.2:2376?tlscacert={tmp_path}/ca.pem&tlscert={tmp_path}/cert.pem"
                        f"&tlskey={tmp_path}/key.pem")
    assert tls["base_url"] == "https://10.0.0.2:2376"
    assert tls["tls"].cert == (f"{tmp_path}/cert.pem", f"{tmp_path}/key.pem")
    assert tls["tls"].verify == f"{tmp_path}/ca.pem"
    assert DockerEngine("tcp://h:2376?tlscacert=/c/ca.pem", lab="x").describe() == "tcp://h:2376"


def test_it_spreads_the_fleet_over_the_configured_engines(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "DOCKER_URL": "", "ENGINES": ["unix:///b.sock", ""]}
    assert fleet_engines() == ["", "unix:///b.sock"]
    assert availability_zone("unix:///b.sock") == settings.FARGATE_LAB["REGION"] + "b"


class SecondEngine:
    """A dockerd of its own: started with its own paths and bridge, stopped and removed after."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.base = Path(f"/tmp/fl2-{tag}")
        self.bridge = f"flbr{tag}"
        self.url = f"unix://{self.base}/docker.sock"
        # Addresses of our own, away from the first engine's 172.17+/16 and 192.168/16 pools.
        octet = 200 + int(tag, 16) % 50
        self.bridge_cidr = f"10.{octet}.0.1/24"
        self.pool = f"base=10.{octet}.128.0/17,size=24"
        self.proc = None

    def start(self, timeout=60):
        self.base.mkdir(parents=True)
        subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", self.bridge_cidr, "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        log = open(self.base / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--host", self.url, "--data-root", str(self.base / "data"),
             "--exec-root", str(self.base / "exec"), "--pidfile", str(self.base / "docker.pid"),
             "--bridge", self.bridge, "--iptables=false", "--default-address-pool", self.pool],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )

        def answers():
            if self.proc.poll() is not None:
                pytest.fail(f"the second dockerd exited: {(self.base / 'dockerd.log').read_text()[-2000:]}")
            try:
                return DockerEngine(self.url, lab="probe").ping()
            except EngineError:
                return False

        wait_until(answers, timeout, interval=0.2, message="the second dockerd to answer")

    def load(self, image):
        """Copy an image from the first engine (no registry is reachable)."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", self.url, "load", "-q"], stdin=save.stdout, check=True,
                       capture_output=True, timeout=120)
        assert save.wait() == 0

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(["docker", "-H", self.url, "rm", "-f", *subprocess.run(
                ["docker", "-H", self.url, "ps", "-aq"], capture_output=True, text=True).stdout.split()],
                capture_output=True)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        subprocess.run(["umount", "-R", str(self.base / "data")], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def second_engine(demo_image):
    engine = SecondEngine()
    try:
        engine.start()
        engine.load(demo_image)
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def two_engines(second_engine, settings, lab_id):
    """The lab's fleet: fleet-1 on the machine's engine, fleet-2 on the second one."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "FLEET_INSTANCES": 2, "ENGINES": [second_engine.url],
                            "STOP_TIMEOUT_SECONDS": 2}
    yield second_engine
    engine = DockerEngine(second_engine.url, lab=lab_id)
    try:
        for container in engine.list_containers():
            engine.remove(container["id"])
        engine.remove_unused_networks()
    except EngineError:  # the engine is gone already
        pass


def running_on(url, lab):
    return [c for c in DockerEngine(url, lab=lab).list_containers() if c["state"] == "running"]


@pytest.mark.docker
def test_spread_over_two_engines_runs_tasks_on_both(two_engines, control_plane, lab_rows, lab_id):
    instances = dict(ContainerInstance.objects.values_list("name", "engine_url"))
    assert instances == {"fleet-1": "", "fleet-2": two_engines.url}
    service = lab_rows.create_service(4, publish=False)
    Service.objects.filter(pk=service.pk).update(
        placement_strategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}])
    lab_rows.update_service(service)
    wait_until(lambda: Task.objects.filter(service=service, last_status="RUNNING").count() == 4, 60,
               message="4 tasks RUNNING")
    assert len(running_on("", lab_id)) == 2
    assert len(running_on(two_engines.url, lab_id)) == 2
    zones = {t.container_instance.name for t in Task.objects.filter(service=service, last_status="RUNNING")}
    assert zones == {"fleet-1", "fleet-2"}
    assert ContainerInstance.objects.get(name="fleet-2").agent_connected
    # A task on the second engine answers on its published port, like one on the first.
    task = Task.objects.filter(service=service, last_status="RUNNING", container_instance__name="fleet-2").first()
    [binding] = task.containers.get().network_bindings
    answer = requests.get(f"http://{binding['bindIP']}:{binding['hostPort']}/", timeout=5).text
    assert f"task: {task.arn}" in answer

    # The agent of the second engine sees its containers die and the service replaces them.
    victim = running_on(two_engines.url, lab_id)[0]
    DockerEngine(two_engines.url, lab=lab_id).kill(victim["id"])
    wait_until(lambda: Task.objects.filter(service=service, last_status="STOPPED").count() == 1
               and Task.objects.filter(service=service, last_status="RUNNING").count() == 4, 60,
               message="the killed task replaced")
