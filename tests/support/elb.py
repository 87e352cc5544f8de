"""Fixtures: elb — load balancer data planes, demo containers as targets, boto3 elbv2/ecr
clients against the live server, and a registry process of the test's own.

Containers are started with the docker CLI under a unique ``fargatelab.lab=test-…`` label
and removed by that label only.
"""
import subprocess
import uuid

import boto3
import pytest

from orchestrator.load_balancer import DataPlane
from orchestrator.models import Account
from orchestrator.registry import RegistryProcess
from tests.support.common import answers_http, free_port, wait_until


def docker(*args, check=True, timeout=120):
    """Run the docker CLI; returns stdout. Fails the test (never skips) if Docker is missing."""
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        pytest.fail("the docker CLI is not installed")
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


class DemoContainers:
    """Demo-image containers of one test, each published on a host port of 127.0.0.1."""

    def __init__(self, image, lab):
        self.image = image
        self.lab = lab
        self.started = []

    def start(self, name):
        """Start one container answering "task: <name>"; returns (container id, host port)."""
        container = docker(
            "run", "-d", "--label", f"fargatelab.lab={self.lab}", "--cpus", "0.25", "-m", "64m",
            "-e", f"FARGATE_LAB_TASK_ARN={name}", "-p", "127.0.0.1::80", self.image,
        )
        self.started.append(container)
        port = int(docker("port", container, "80/tcp").splitlines()[0].rsplit(":", 1)[1])
        wait_until(lambda: answers_http(port, timeout=0.5), 15, message=f"container {name} to answer on {port}")
        return container, port

    def cleanup(self):
        """Remove every container carrying this test's lab label (and nothing else)."""
        ids = docker("ps", "-aq", "--filter", f"label=fargatelab.lab={self.lab}", check=False).split()
        if ids:
            docker("rm", "-f", *ids, check=False)


@pytest.fixture
def demo_containers(settings, demo_image):
    """Start demo containers under a unique test lab label; all removed afterwards."""
    lab = f"test-{uuid.uuid4().hex[:8]}"
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "LAB_ID": lab}
    containers = DemoContainers(demo_image, lab)
    yield containers
    containers.cleanup()


@pytest.fixture
def data_plane(transactional_db):
    """A running load balancer data plane that syncs every 0.2 s; stopped afterwards."""
    plane = DataPlane(sync_seconds=0.2)
    plane.start()
    yield plane
    plane.stop()


def _client(service, url):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def elbv2(live_server):
    """A boto3 elbv2 client signed with test/test, pointed at the live server."""
    Account.default()
    return _client("elbv2", live_server.url)


@pytest.fixture
def ecr(live_server):
    """A boto3 ecr client signed with test/test, pointed at the live server."""
    Account.default()
    return _client("ecr", live_server.url)


@pytest.fixture
def lab_registry(settings, tmp_path):
    """The lab's registry process on a port of its own, with storage under tmp_path."""
    port = free_port()
    root = tmp_path / "registry"
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_PORT": port, "REGISTRY_ROOT": str(root)}
    process = RegistryProcess(port=port, root=root)
    process.start()
    yield process
    process.stop()
