"""The Docker adapter: named errors, lab-label ownership, limits, ports, events, logs."""
import pytest

from orchestrator.docker_engine import (
    Conflict, ContainerNotFound, DockerEngine, EngineUnavailable, ImageNotFound, NotOwned, summarize,
)


def test_it_explains_a_missing_engine():
    with pytest.raises(EngineUnavailable) as failure:
        DockerEngine.for_url("tcp://127.0.0.1:1", lab="nowhere").ping()
    assert "No Docker engine answers at tcp://127.0.0.1:1: start Docker" in str(failure.value)


@pytest.fixture
def spec(lab_id, demo_image):
    return {"name": f"fargatelab-{lab_id}-t1-web", "image": demo_image, "labels": {"fargatelab.task-id": "t1"},
            "nano_cpus": 250_000_000, "memory": 512 * 1048576, "env": {"PORT": "8080"},
            "ports": [(8080, "tcp")], "publish_address": "127.0.0.1"}


@pytest.mark.docker
def test_it_creates_a_labelled_limited_container_with_a_published_port(docker_engine, spec, lab_id):
    container = docker_engine.create_container(spec)
    docker_engine.start(container)
    report = summarize(docker_engine.inspect(container))
    assert report["running"]
    assert report["labels"]["fargatelab.lab"] == lab_id
    [binding] = report["network_bindings"]
    assert binding["bindIP"] == "127.0.0.1" and binding["containerPort"] == 8080 and binding["hostPort"] > 0
    data = docker_engine.inspect(container)
    assert data["HostConfig"]["NanoCpus"] == 250_000_000
    assert data["HostConfig"]["Memory"] == 512 * 1048576
    assert not data["HostConfig"]["Privileged"] and data["HostConfig"]["NetworkMode"] != "host"
    assert [c["id"] for c in docker_engine.list_containers()] == [container]
    with pytest.raises(Conflict):
        docker_engine.create_container(spec)
    docker_engine.stop(container, timeout=5)
    assert summarize(docker_engine.inspect(container))["exit_code"] == 0
    assert any("serving task" in line for line in docker_engine.logs(container, tail=10))
    docker_engine.remove(container)
    with pytest.raises(ContainerNotFound):
        docker_engine.inspect(container)
    docker_engine.remove(container)  # removing twice is fine


@pytest.mark.docker
def test_it_refuses_containers_without_its_label(docker_engine, spec):
    other = DockerEngine(lab=docker_engine.lab + "-other")
    theirs = other.create_container(spec)
    try:
        assert docker_engine.list_containers() == []
        with pytest.raises(NotOwned):
            docker_engine.start(theirs)
        with pytest.raises(NotOwned):
            docker_engine.kill(theirs)
        with pytest.raises(NotOwned):
            docker_engine.logs(theirs)
    finally:
        other.remove(theirs)


@pytest.mark.docker
def test_it_streams_events_of_its_own_containers(docker_engine, spec):
    stream = docker_engine.events()
    container = docker_engine.create_container(spec)
    docker_engine.start(container)
    docker_engine.kill(container)
    actions = []
    for event in stream:
        actions.append(event.get("Action"))
        if event.get("Action") == "die":
            break
    stream.close()
    assert actions[:3] == ["create", "start", "kill"] and actions[-1] == "die"
    docker_engine.remove(container)


@pytest.mark.docker
def test_it_names_a_missing_image(docker_engine):
    assert docker_engine.image_present("fargate-lab/missing:nope") is False
    with pytest.raises(ImageNotFound):
        docker_engine.pull("127.0.0.1:1/missing:nope")


@pytest.mark.docker
def test_it_creates_a_network_once_and_tidies_it(docker_engine, lab_id):
    name = f"fargatelab-{lab_id}-net"
    first = docker_engine.ensure_network(name)
    docker_engine.forget_network(name)
    assert docker_engine.ensure_network(name) == first
    assert name in docker_engine.remove_unused_networks()


@pytest.mark.docker
def test_it_owns_its_volumes_and_mounts_them_into_a_helper_that_it_removes(docker_engine, lab_id):
    from orchestrator import sandbox_pool

    sandbox_pool.ensure_image(docker_engine)
    name, other = f"fargatelab-{lab_id}-vol", DockerEngine(lab=lab_id + "-other")
    assert docker_engine.ensure_volume(name, {"fargatelab.account": "1"}) is True
    assert docker_engine.ensure_volume(name, {"fargatelab.account": "1"}) is False
    with pytest.raises(NotOwned):
        other.ensure_volume(name, {})
    helper = {"name": f"fargatelab-{lab_id}-helper", "image": sandbox_pool.PAUSE_IMAGE, "read_only": True,
              "mounts": [(name, "/v", False)]}
    script = "echo kept > /v/file; cat /v/file; ls /sys/class/net; exit 3"
    code, output = docker_engine.run_helper({**helper, "entrypoint": ["/bin/busybox", "sh", "-c", script]})
    assert (code, output) == (3, "kept\nlo")  # no network but loopback
    code, output = docker_engine.run_helper({**helper, "entrypoint": ["/bin/busybox", "sleep", "30"]}, timeout=1)
    assert code == -1 and "did not finish within 1 s" in output
    assert docker_engine.list_containers() == []
    assert [v["name"] for v in docker_engine.list_volumes({"fargatelab.account": "1"})] == [name]
    assert docker_engine.list_volumes({"fargatelab.account": "2"}) == []
    assert other.remove_volumes() == [] and docker_engine.remove_volumes({"fargatelab.account": "1"}) == [name]
