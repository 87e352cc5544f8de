"""ECR in a classroom: the gate listens where the lab does, so a student on another machine
pushes to the advertised address with their token; the lab's own engine pulls through 127.0.0.1.

Docker on this machine talks plain HTTP to 127.0.0.0/8 only (and changing its daemon.json
would mean restarting it), so the push from this machine's non-loopback address speaks the
registry's HTTP API itself, as ``docker push`` does: blobs, then the manifest."""
import gzip
import hashlib
import io
import json
import subprocess
import tarfile

import pytest
import requests

from orchestrator import network, registry
from orchestrator.models import Activity, Task
from orchestrator.registry import RegistryProcess
from tests.support.common import free_port, wait_until
from tests.support.docker import LabRows
from tests.support.elb import docker

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def test_the_registry_is_named_where_students_reach_it(settings):
    lab = {**settings.FARGATE_LAB, "REGISTRY_PORT": 5055, "ADVERTISE_ADDRESS": "", "REGISTRY_LISTEN_ADDRESS": ""}
    settings.FARGATE_LAB, settings.LAB_HOST = lab, "127.0.0.1"
    assert registry.registry_host() == "127.0.0.1:5055"
    settings.LAB_HOST = "0.0.0.0"  # a classroom lab: the gate follows HOST, named by this machine's address
    assert network.registry_listen_address() == "0.0.0.0"
    assert registry.registry_host() == f"{network.default_route_address()}:5055"
    settings.FARGATE_LAB = {**lab, "ADVERTISE_ADDRESS": "lab.school.example"}
    assert registry.registry_host() == "lab.school.example:5055"
    settings.FARGATE_LAB = {**lab, "REGISTRY_LISTEN_ADDRESS": "127.0.0.1"}  # a setting keeps it on loopback
    assert registry.registry_host() == "127.0.0.1:5055"
    assert registry.is_registry_image("127.0.0.1:5055/000000000000/web:v1")
    settings.FARGATE_LAB = {**lab, "ADVERTISE_ADDRESS": "lab.school.example"}
    assert registry.is_registry_image("lab.school.example:5055/000000000000/web:v1")
    assert registry.local_reference("lab.school.example:5055/000000000000/web:v1") == "127.0.0.1:5055/000000000000/web:v1"
    assert not registry.is_registry_image("docker.io/library/web:v1")


@pytest.fixture
def classroom_registry(settings, tmp_path):
    """The lab's registry with its gate on this machine's non-loopback address (and 127.0.0.1)."""
    address = network.default_route_address()
    assert not network.is_loopback(address), "this test needs a machine with a non-loopback address"
    port = free_port()
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_PORT": port, "REGISTRY_ROOT": str(tmp_path / "registry"),
                            "REGISTRY_LISTEN_ADDRESS": address, "ADVERTISE_ADDRESS": ""}
    process = RegistryProcess(port=port, root=tmp_path / "registry")
    process.start()
    yield address, port
    process.stop()


def image_parts(image):
    """(config bytes, [gzipped layer bytes]) of a local image, from ``docker save``."""
    saved = tarfile.open(fileobj=io.BytesIO(subprocess.run(["docker", "save", image], capture_output=True,
                                                           check=True, timeout=120).stdout))
    [entry] = json.load(saved.extractfile("manifest.json"))
    layers = [gzip.compress(saved.extractfile(layer).read(), mtime=0) for layer in entry["Layers"]]
    return saved.extractfile(entry["Config"]).read(), layers


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_over_http(base, repository, tag, config, layers, password):
    """``docker push`` as the registry API sees it: each blob uploaded, then the manifest."""
    auth = ("AWS", password)
    for blob in (config, *layers):
        started = requests.post(f"{base}/v2/{repository}/blobs/uploads/", auth=auth, timeout=30)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        location = location if location.startswith("http") else base + location
        done = requests.put(location, params={"digest": digest(blob)}, data=blob, auth=auth, timeout=60,
                            headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                           "digest": digest(config)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                            "digest": digest(layer)} for layer in layers]}
    put = requests.put(f"{base}/v2/{repository}/manifests/{tag}", data=json.dumps(manifest), auth=auth, timeout=30,
                       headers={"Content-Type": MANIFEST})
    assert put.status_code == 201, put.text


@pytest.mark.docker
def test_a_push_from_another_address_lands_with_a_token_and_a_task_pulls_it(classroom_registry, ecr, control_plane,
                                                                              demo_image):
    import base64

    address, port = classroom_registry
    base = f"http://{address}:{port}"
    uri = ecr.create_repository(repositoryName="web")["repository"]["repositoryUri"]
    assert uri == f"{address}:{port}/000000000000/web"
    data = ecr.get_authorization_token()["authorizationData"][0]
    assert data["proxyEndpoint"] == base
    password = base64.b64decode(data["authorizationToken"]).decode().partition(":")[2]

    refused = requests.post(f"{base}/v2/000000000000/web/blobs/uploads/", timeout=30)
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    config, layers = image_parts(demo_image)
    push_over_http(base, "000000000000/web", "v2", config, layers, password)
    assert ecr.describe_images(repositoryName="web")["imageDetails"][0]["imageTags"] == ["v2"]

    image = f"{uri}:v2"
    try:
        rows = LabRows(image)
        task = rows.run_task(rows.task_definition(image=image))
        wait_until(lambda: Task.objects.get(pk=task.pk).last_status == Task.RUNNING, 90,
                   message="the task of the image pushed from another address to run")
        pulled = Activity.objects.filter(object_arn=task.arn, action="pulled").values_list("message", flat=True)
        assert [line for line in pulled if line.startswith(f"pulled {image}")]
    finally:
        docker("rmi", image, registry.local_reference(image), check=False)
