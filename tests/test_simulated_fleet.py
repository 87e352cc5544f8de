"""A simulated fleet (KWOK's idea): instances on a sim:// runtime whose agent simulates
containers, driven by the real control plane; mixed with real Docker instances, placement
constraints select either."""
import pytest

from orchestrator import simulated_engine
from orchestrator.docker_engine import DockerEngine, EngineError
from orchestrator.models import ContainerInstance, Service, Task
from tests.support.common import wait_until


def test_the_runtime_reads_its_options_from_the_url():
    assert simulated_engine.options("sim://kwok")["exit"] is None
    found = simulated_engine.options("sim://kwok?cpus=8&pull=0.5&exit=3")
    assert (found["cpus"], found["pull"], found["exit"]) == (8.0, 0.5, 3.0)
    for bad in ("sim://kwok?pull=x", "sim://kwok?start=-1", "sim://kwok?gpus=1"):
        with pytest.raises(EngineError):
            simulated_engine.options(bad)


def test_a_simulated_container_lives_as_docker_reports_one(settings):
    engine = DockerEngine.for_url("sim://unit?exit=never", lab="unit-lab")
    events = engine.events()
    seen = iter(events)
    network = "net-a"
    engine.ensure_network(network)
    cid = engine.create_container({"name": "c1", "image": "demo:1", "labels": {"fargatelab.task-id": "t1"},
                                   "network": network})
    engine.start(cid)
    report = engine.inspect(cid)
    assert report["State"]["Running"] is True and report["Config"]["Labels"]["fargatelab.lab"] == "unit-lab"
    assert report["NetworkSettings"]["Networks"][network]["IPAddress"].startswith("10.200.")
    assert [c["state"] for c in engine.list_containers(labels={"fargatelab.task-id": "t1"})] == ["running"]
    engine.kill(cid, "SIGKILL")
    assert engine.inspect(cid)["State"]["ExitCode"] == 137
    actions = [next(seen)["Action"] for _ in range(4)]
    assert actions == ["create", "start", "kill", "die"]
    engine.remove(cid)
    assert next(seen)["Action"] == "destroy" and engine.list_containers() == []
    assert engine.remove_network_if_unused(network) is True
    events.close()


@pytest.fixture
def simulated_fleet(settings, lab_id):
    """A fleet of the local Docker engine and a simulated runtime, one instance each."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "ENGINES": ["sim://kwok?cpus=16&memory=32768"],
                            "FLEET_INSTANCES": 2}
    return settings


def _service(lab_rows, count, expression=None, name="svc"):
    service = lab_rows.create_service(count, name=name, publish=False)
    if expression:
        Service.objects.filter(pk=service.pk).update(
            placement_constraints=[{"type": "memberOf", "expression": expression}])
    from orchestrator import bus

    bus.publish("service", service.pk)
    return service


@pytest.mark.docker
def test_a_mixed_fleet_places_by_instance_kind_and_runs_both(simulated_fleet, control_plane, lab_rows, docker_engine):
    instances = {i.kind: i for i in ContainerInstance.objects.all()}
    assert set(instances) == {"docker", "simulated"}
    simulated = _service(lab_rows, 20, "attribute:fargatelab.instance-kind == simulated", name="sim")
    real = _service(lab_rows, 1, "attribute:fargatelab.instance-kind != simulated", name="real")
    running = Task.objects.filter(last_status="RUNNING")
    wait_until(lambda: running.filter(service=simulated).count() == 20 and running.filter(service=real).count() == 1,
               60, message="20 simulated and 1 real task RUNNING")
    assert set(running.filter(service=simulated).values_list("container_instance__engine_url", flat=True)) == {
        "sim://kwok?cpus=16&memory=32768"}
    assert list(running.filter(service=real).values_list("container_instance__engine_url", flat=True)) == [""]
    # Only the real task has a real container; the simulated ones exist in the runtime alone.
    assert len([c for c in docker_engine.list_containers() if c["state"] == "running"]) == 1
    task = running.filter(service=simulated).first()
    assert task.private_ip.startswith("10.200.")  # the simulated network's address

    # A simulated container that dies is replaced, as a real one is (self-healing on the sim).
    engine = DockerEngine.for_url(task.container_instance.engine_url)
    container = engine.list_containers(labels={"fargatelab.task-id": task.task_id})[0]
    engine.kill(container["id"], "SIGKILL")
    wait_until(lambda: Task.objects.get(pk=task.pk).last_status == "STOPPED", 30, message="the killed task STOPPED")
    wait_until(lambda: running.filter(service=simulated).count() == 20, 30, message="its replacement RUNNING")
    assert Task.objects.get(pk=task.pk).containers.get().exit_code == 137


@pytest.mark.browser
def test_the_map_and_the_instance_page_show_a_simulated_instance_as_such(page, live_lab_server):
    from playwright.sync_api import expect

    ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    ContainerInstance.objects.create(name="fleet-2", engine_url="sim://kwok", cpu_registered=65536,
                                     memory_registered=262144)
    page.goto(live_lab_server.url + "/")
    expect(page.locator("li.fleet-node[data-instance=fleet-2] .simulated")).to_have_text("simulated")
    expect(page.locator("li.fleet-node[data-instance=fleet-1] .simulated")).to_have_count(0)
    page.goto(live_lab_server.url + "/instances/fleet-2/")
    expect(page.locator(".simulated-note")).to_contain_text("nothing runs and nothing answers on their ports")
    expect(page.locator(".instance-box .simulated")).to_have_text("simulated")
