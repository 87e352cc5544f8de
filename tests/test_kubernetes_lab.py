"""Kubernetes twins of a real lab (``manage.py lab`` on real Docker): the manifests its pages
show for a running task and for a service mid-rollout parse, validate against Kubernetes'
schemas, and say what Docker really runs."""
import html
import re
import uuid

import pytest
import requests

from tests.support.kubernetes import parse_and_validate
from tests.support.lab import LabProcess, lab_containers, poll, remove_lab_objects
from tests.support.api import FARGATE

pytestmark = pytest.mark.docker

GRACE_SECONDS = 15


def web(revision_greeting, family="web"):
    """A task definition of the demo image with an entry point, a command and an env."""
    return {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "containerDefinitions": [{
            "name": "web", "image": "fargate-lab/demo:latest", "essential": True,
            "entryPoint": ["/bin/sh", "-c"], "command": ["exec /demo/serve.sh"],
            "environment": [{"name": "GREETING", "value": revision_greeting}],
            "portMappings": [{"containerPort": 80}],
        }],
    }


@pytest.fixture
def lab(tmp_path, docker_client, lab_demo_image):
    """A lab whose tasks without a load balancer count as healthy GRACE_SECONDS after RUNNING."""
    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}",
                     extra_env={"FARGATE_LAB_HEALTH_GRACE_SECONDS": str(GRACE_SECONDS)})
    lab.start()
    yield lab
    lab.stop()
    remove_lab_objects(docker_client, lab.lab_id)


@pytest.fixture
def dashboard(lab):
    """A requests session logged in to the lab's dashboard as the documented admin / admin."""
    session = requests.Session()
    login = session.get(lab.url + "/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    response = session.post(lab.url + "/accounts/login/", timeout=10,
                            data={"username": "admin", "password": "admin", "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and "Log out" in response.text
    return session


def manifests_on(session, url):
    """The manifests the page at ``url`` shows (its YAML, unescaped as a browser shows it), by kind."""
    page = session.get(url, timeout=10)
    assert page.status_code == 200
    match = re.search(r'<pre id="[^"]+-yaml" class="yaml">(.*?)</pre>', page.text, re.S)
    assert match, f"no manifest on {url}"
    return parse_and_validate(html.unescape(match.group(1)))


def test_a_running_task_s_pod_says_what_docker_runs(lab, dashboard, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**web("hello from the lab"))
    arn = ecs.run_task(cluster="demo", taskDefinition="web", count=1, **FARGATE)["tasks"][0]["taskArn"]
    poll(lambda: ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
         message="the task to run")

    pod, = manifests_on(dashboard, f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/")["Pod"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "fargate-lab/demo:latest"
    assert container["command"] == ["/bin/sh", "-c"] and container["args"] == ["exec /demo/serve.sh"]
    assert {"name": "GREETING", "value": "hello from the lab"} in container["env"]
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}
    assert pod["status"]["phase"] == "Running" and pod["metadata"]["namespace"] == "demo"

    # The same facts, read from Docker itself.
    docker_container, = [c for c in lab_containers(docker_client, lab.lab_id) if c.labels["fargatelab.task-arn"] == arn]
    docker_container.reload()
    assert docker_container.attrs["Config"]["Image"] == container["image"]
    assert docker_container.attrs["Config"]["Entrypoint"] == container["command"]
    assert docker_container.attrs["Config"]["Cmd"] == container["args"]
    assert "GREETING=hello from the lab" in docker_container.attrs["Config"]["Env"]
    assert docker_container.attrs["HostConfig"]["NanoCpus"] == 250_000_000  # 250m
    assert docker_container.attrs["HostConfig"]["Memory"] == 512 * 1024 * 1024  # 512Mi
    assert pod["status"]["podIP"] == ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]["containers"][0][
        "networkInterfaces"][0]["privateIpv4Address"]

    # Its namespace and node, from their own pages.
    namespace, = manifests_on(dashboard, f"{lab.url}/clusters/demo/")["Namespace"]
    assert namespace["metadata"]["name"] == pod["metadata"]["namespace"] and namespace["status"]["phase"] == "Active"
    node, = manifests_on(dashboard, f"{lab.url}/instances/{pod['spec']['nodeName']}/")["Node"]
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    assert node["metadata"]["annotations"]["fargate-lab/cpu-units-in-use"] == "256"  # this task's 0.25 vCPU


def test_a_service_mid_rollout_is_a_deployment_with_a_replica_set_per_deployment(lab, dashboard):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**web("v1"))
    service_arn = ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web:1",
                                     desiredCount=2, **FARGATE)["service"]["serviceArn"]
    pk = service_page_pk(dashboard, lab)
    url = f"{lab.url}/services/{pk}/"

    # Both tasks of web:1 healthy: past the grace period, they are the Deployment's ready replicas.
    poll(lambda: manifests_on(dashboard, url)["Deployment"][0]["status"].get("readyReplicas") == 2,
         timeout=GRACE_SECONDS + 45, message="2 ready replicas of web:1")

    ecs.register_task_definition(**web("v2"))
    ecs.update_service(cluster="demo", service="web", taskDefinition="web:2")

    def mid_rollout():
        by_kind = manifests_on(dashboard, url)
        replica_sets = by_kind["ReplicaSet"]
        if len(replica_sets) == 2 and all(rs["status"].get("replicas") == 2 for rs in replica_sets):
            return by_kind, ecs.describe_services(cluster="demo", services=[service_arn])["services"][0]
        return None

    by_kind, described = poll(mid_rollout, message="2 ReplicaSets of 2 Pods each")
    deployment, = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    # minimumHealthyPercent 100 / maximumPercent 200 (the defaults): none unavailable, 2 more.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "100%", "maxUnavailable": "0%"}
    assert deployment["spec"]["minReadySeconds"] == GRACE_SECONDS
    template = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "GREETING", "value": "v2"} in template["env"]
    assert template["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}

    by_id = {rs["metadata"]["annotations"]["fargate-lab/ecs-deployment"]: rs for rs in by_kind["ReplicaSet"]}
    assert set(by_id) == {d["id"] for d in described["deployments"]}
    for ecs_deployment in described["deployments"]:
        replica_set = by_id[ecs_deployment["id"]]
        assert replica_set["spec"]["replicas"] == ecs_deployment["desiredCount"]
        env = replica_set["spec"]["template"]["spec"]["containers"][0]["env"]
        greeting = "v2" if ecs_deployment["status"] == "PRIMARY" else "v1"
        assert {"name": "GREETING", "value": greeting} in env
    primary = by_id[next(d["id"] for d in described["deployments"] if d["status"] == "PRIMARY")]
    # The new tasks run but are not healthy yet (their grace period): ready counts the old ones.
    assert primary["status"].get("readyReplicas", 0) < 2
    assert deployment["status"]["readyReplicas"] < deployment["status"]["replicas"] == 4
    service, = by_kind["Service"]
    assert service["spec"]["selector"] == {"app": "web"}


def service_page_pk(session, lab):
    """The dashboard pk of service web, from the cluster page's link."""
    page = session.get(f"{lab.url}/clusters/demo/", timeout=10).text
    return int(re.search(r'href="/services/(\d+)/"', page).group(1))


def test_a_service_whose_image_cannot_be_pulled_backs_off_as_image_pull_back_off(lab, dashboard):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    definition = web("never")
    definition["containerDefinitions"][0]["image"] = "fargate-lab/missing:nowhere"
    ecs.register_task_definition(**definition)
    ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=1, **FARGATE)

    def stopped_statuses():
        arns = ecs.list_tasks(cluster="demo", desiredStatus="STOPPED")["taskArns"]
        return [manifests_on(dashboard, f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/")["Pod"][0] for arn in arns]

    # Each failed start is a Failed Pod whose container could not pull its image; once the
    # service's restarts are throttled (two failures in a row), Kubernetes' word is ImagePullBackOff.
    pods = poll(lambda: [p for p in stopped_statuses() if p["status"].get("reason") == "ImagePullBackOff"],
                timeout=60, message="a stopped task in ImagePullBackOff")
    assert pods[0]["status"]["phase"] == "Failed"
    waiting = pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff" and "CannotPullContainerError" in pods[0]["status"]["message"]

    def throttle_event():
        events = ecs.describe_services(cluster="demo", services=["web"])["services"][0]["events"]
        return any("unable to consistently start tasks successfully" in e["message"] for e in events)

    poll(throttle_event, message="the service event that says its restarts are throttled")
