"""From image to URL through the real lab (issue 4): services behind an Application Load
Balancer, and task images pushed to and pulled from the lab's registry (ECR).

Each test starts ``manage.py lab`` of its own (own database, lab id and registry port), drives
it with boto3, and checks the answers of the listener and the containers on the Docker engine.
"""
import base64
import collections
import subprocess
import threading
import uuid

import pytest
import requests

from tests.support.common import free_port
from tests.support.lab import lab_containers, poll
from tests.support.api import NETWORK

pytestmark = pytest.mark.docker

DRAIN_SECONDS = 3


def task_definition(command=None):
    """The demo web server as a Fargate task definition (container "web" on port 80)."""
    container = {
        "name": "web", "image": "fargate-lab/demo:latest", "essential": True,
        "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
    }
    if command:
        container["command"] = command
    return {
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "256", "memory": "512", "containerDefinitions": [container],
    }


class Alb:
    """A load balancer, a target group (5 s checks, short deregistration delay) and a listener
    on a free port of the lab, made through the ELBv2 API."""

    def __init__(self, lab, health_path="/"):
        self.elbv2 = lab.client("elbv2")
        lb = self.elbv2.create_load_balancer(Name="web-lb", Subnets=["subnet-a", "subnet-b"])["LoadBalancers"][0]
        self.lb_arn, self.dns_name = lb["LoadBalancerArn"], lb["DNSName"]
        self.tg_arn = self.elbv2.create_target_group(
            Name="web-tg", Protocol="HTTP", Port=80, TargetType="ip", VpcId="vpc-lab",
            HealthCheckPath=health_path, HealthCheckIntervalSeconds=5, HealthyThresholdCount=2,
            UnhealthyThresholdCount=2,
        )["TargetGroups"][0]["TargetGroupArn"]
        self.elbv2.modify_target_group_attributes(TargetGroupArn=self.tg_arn, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(DRAIN_SECONDS)}])
        self.port = free_port()
        self.elbv2.create_listener(LoadBalancerArn=self.lb_arn, Protocol="HTTP", Port=self.port,
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": self.tg_arn}])
        self.url = f"http://127.0.0.1:{self.port}/"

    def targets(self):
        """{target id: state} as DescribeTargetHealth reports them."""
        described = self.elbv2.describe_target_health(TargetGroupArn=self.tg_arn)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described}

    def healthy(self):
        return sorted(i for i, state in self.targets().items() if state == "healthy")

    def load_balancer_entry(self):
        return [{"targetGroupArn": self.tg_arn, "containerName": "web", "containerPort": 80}]


def answering_task(url):
    """The task ARN the demo image names in its answer (via the listener)."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.text.splitlines()[0].removeprefix("task: ")


def service_tasks(ecs, desired="RUNNING"):
    """The service's tasks (describe_tasks shapes)."""
    arns = ecs.list_tasks(cluster="demo", serviceName="web", desiredStatus=desired)["taskArns"]
    return ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"] if arns else []


def running(ecs):
    return [t for t in service_tasks(ecs) if t["lastStatus"] == "RUNNING"]


def create_service(lab, alb, count, command=None, **params):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**task_definition(command))
    ecs.create_service(
        cluster="demo", serviceName="web", taskDefinition="web", desiredCount=count, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"], "assignPublicIp": "ENABLED"}},
        loadBalancers=alb.load_balancer_entry(), **params,
    )
    return ecs


class Traffic:
    """Requests to the listener, back to back on a thread, until stopped: every outcome is kept."""

    def __init__(self, url):
        self.url = url
        self.outcomes = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.get(self.url, timeout=10)
                    self.outcomes.append((response.status_code, response.text.splitlines()[0] if response.text else ""))
                except requests.RequestException as exc:
                    self.outcomes.append((0, repr(exc)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=15)

    def failures(self):
        return [o for o in self.outcomes if o[0] != 200]


def task_ip(task):
    interfaces = task["containers"][0].get("networkInterfaces") or []
    if interfaces:
        return interfaces[0]["privateIpv4Address"]
    details = {d["name"]: d["value"] for a in task.get("attachments", []) for d in a.get("details", [])}
    return details.get("privateIPv4Address", "")


def all_serving(ecs, alb, count):
    """The running tasks once ``count`` run and all are healthy targets (and nothing else is)."""
    tasks = running(ecs)
    if len(tasks) != count:
        return None
    ips = {task_ip(t) for t in tasks}
    return tasks if "" not in ips and set(alb.healthy()) == ips else None


def test_it_spreads_requests_over_three_tasks_and_replaces_a_killed_one_without_a_failed_request(lab, docker_client):
    alb = Alb(lab)
    ecs = create_service(lab, alb, 3)

    tasks = poll(lambda: all_serving(ecs, alb, 3), timeout=90, message="3 tasks, all healthy targets")
    assert {t["healthStatus"] for t in tasks} <= {"HEALTHY", "UNKNOWN"}
    poll(lambda: {t["healthStatus"] for t in running(ecs)} == {"HEALTHY"}, message="tasks report HEALTHY")

    answers = collections.Counter(answering_task(alb.url) for _ in range(60))
    assert set(answers) == {t["taskArn"] for t in tasks}
    assert min(answers.values()) >= 15, answers

    victim = lab_containers(docker_client, lab.lab_id)[0]
    victim_arn = victim.labels["fargatelab.task-arn"]
    with Traffic(alb.url) as traffic:
        poll(lambda: len(traffic.outcomes) >= 20, message="traffic flowing")
        victim.kill()
        replaced = poll(lambda: (lambda ts: ts if ts and victim_arn not in {t["taskArn"] for t in ts} else None)(
            all_serving(ecs, alb, 3)), timeout=90, message="a replacement that is a healthy target")
        seen_before = len(traffic.outcomes)
        poll(lambda: len(traffic.outcomes) >= seen_before + 30, message="traffic after the replacement")
    assert traffic.failures() == [], traffic.failures()[:5]
    assert len(traffic.outcomes) > 50

    dead = poll(lambda: [t for t in ecs.describe_tasks(cluster="demo", tasks=[victim_arn])["tasks"]
                         if t["lastStatus"] == "STOPPED"], message="the killed task STOPPED")[0]
    assert dead["stopCode"] == "EssentialContainerExited"
    # Docker may give the replacement the victim's IP: the target then is the newcomer's.
    assert set(alb.targets()) == {task_ip(t) for t in replaced}
    newcomer = ({t["taskArn"] for t in replaced} - {t["taskArn"] for t in tasks}).pop()
    tail = collections.Counter(o[1].removeprefix("task: ") for o in traffic.outcomes[-30:])
    assert newcomer in tail, tail


def test_it_scales_out_to_five_serving_tasks_and_drains_on_scale_in(lab, docker_client):
    alb = Alb(lab)
    ecs = create_service(lab, alb, 2)
    poll(lambda: all_serving(ecs, alb, 2), timeout=90, message="2 serving tasks")

    ecs.update_service(cluster="demo", service="web", desiredCount=5)
    five = poll(lambda: all_serving(ecs, alb, 5), timeout=120, message="5 serving tasks")
    answers = collections.Counter(answering_task(alb.url) for _ in range(50))
    assert set(answers) == {t["taskArn"] for t in five}

    statuses = collections.defaultdict(list)

    def note_statuses():
        for task in service_tasks(ecs, desired="STOPPED"):
            if not statuses[task["taskArn"]] or statuses[task["taskArn"]][-1] != task["lastStatus"]:
                statuses[task["taskArn"]].append(task["lastStatus"])
        return sum(1 for seen in statuses.values() if seen and seen[-1] == "STOPPED") == 4

    with Traffic(alb.url) as traffic:
        ecs.update_service(cluster="demo", service="web", desiredCount=1)
        poll(note_statuses, timeout=90, interval=0.1, message="4 tasks drained and STOPPED")
    assert traffic.failures() == [], traffic.failures()[:5]
    assert all("DEACTIVATING" in seen for seen in statuses.values()), dict(statuses)

    (survivor,) = running(ecs)
    assert {answering_task(alb.url) for _ in range(10)} == {survivor["taskArn"]}
    assert set(alb.targets()) == {task_ip(survivor)}
    poll(lambda: len(lab_containers(docker_client, lab.lab_id)) == 1, message="one container left")
    events = [e["message"] for e in ecs.describe_services(cluster="demo", services=["web"])["services"][0]["events"]]
    assert any("has stopped 4 running tasks" in m for m in events), events


def test_it_replaces_a_task_that_fails_its_health_checks(lab, docker_client):
    alb = Alb(lab, health_path="/health")
    command = ["sh", "-c", "mkdir -p /www && echo ok > /www/health && exec /demo/serve.sh"]
    ecs = create_service(lab, alb, 2, command=command, healthCheckGracePeriodSeconds=0)
    tasks = poll(lambda: all_serving(ecs, alb, 2), timeout=90, message="2 serving tasks")

    sick = lab_containers(docker_client, lab.lab_id)[0]
    sick_arn = sick.labels["fargatelab.task-arn"]
    assert sick.exec_run(["rm", "/www/health"]).exit_code == 0

    stopped = poll(lambda: [t for t in ecs.describe_tasks(cluster="demo", tasks=[sick_arn])["tasks"]
                            if t["desiredStatus"] == "STOPPED"], timeout=60, message="the sick task stopped")[0]
    assert stopped["stopCode"] == "ServiceSchedulerInitiated"
    assert stopped["stoppedReason"] == f"Task failed ELB health checks in (target-group {alb.tg_arn})"
    replaced = poll(lambda: (lambda ts: ts if ts and sick_arn not in {t["taskArn"] for t in ts} else None)(
        all_serving(ecs, alb, 2)), timeout=90, message="a healthy replacement")
    assert len({t["taskArn"] for t in replaced} - {t["taskArn"] for t in tasks}) == 1
    events = [e["message"] for e in ecs.describe_services(cluster="demo", services=["web"])["services"][0]["events"]]
    assert any("is unhealthy in (target-group" in m for m in events), events


def test_it_runs_a_task_from_an_image_pushed_to_the_labs_registry(lab, tmp_path):
    ecr = lab.client("ecr")
    name = f"demo-{uuid.uuid4().hex[:8]}"
    uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    registry = uri.split("/")[0]
    assert registry == f"127.0.0.1:{lab.env['FARGATE_LAB_REGISTRY_PORT']}"
    token = base64.b64decode(ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]).decode()
    docker_cli = ["docker", "--config", str(tmp_path / "docker")]
    login = subprocess.run(docker_cli + ["login", "--username", "AWS", "--password-stdin", registry],
                           input=token.partition(":")[2], capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    image = f"{uri}:v1"
    subprocess.run(docker_cli + ["tag", "fargate-lab/demo:latest", image], check=True, timeout=60)
    try:
        push = subprocess.run(docker_cli + ["push", image], capture_output=True, text=True, timeout=300)
        assert push.returncode == 0, push.stderr
        assert ecr.describe_images(repositoryName=name)["imageDetails"][0]["imageTags"] == ["v1"]
        # Only the registry has the tag now: the agent must pull it from there.
        subprocess.run(docker_cli + ["rmi", image], check=True, capture_output=True, timeout=60)

        ecs = lab.client()
        ecs.create_cluster(clusterName="demo")
        definition = task_definition()
        definition["containerDefinitions"][0]["image"] = image
        ecs.register_task_definition(**definition)
        arn = ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE", **NETWORK)["tasks"][0]["taskArn"]
        task = poll(lambda: [t for t in ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"]
                             if t["lastStatus"] in ("RUNNING", "STOPPED")], timeout=120, message="the task to run")[0]
        assert task["lastStatus"] == "RUNNING", task.get("stoppedReason")
        assert task["pullStartedAt"] and task["pullStoppedAt"]
        port = task["containers"][0]["networkBindings"][0]["hostPort"]
        assert arn in requests.get(f"http://127.0.0.1:{port}/", timeout=5).text
        pulled = subprocess.run(docker_cli + ["image", "inspect", image], capture_output=True, timeout=60)
        assert pulled.returncode == 0, "the engine has the image from the registry"
        page = lab_session(lab).get(f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/", timeout=10)
        assert page.status_code == 200 and f"pulled {image}" in page.text
    finally:
        subprocess.run(docker_cli + ["rmi", image], capture_output=True, timeout=60)

    lab.stop()
    with pytest.raises(requests.RequestException):
        requests.get(f"http://{registry}/v2/", timeout=2)
    lab.start()


def lab_session(lab):
    """A requests session logged in to the dashboard as admin."""
    session = requests.Session()
    page = session.get(f"{lab.url}/accounts/login/", timeout=10)
    session.post(f"{lab.url}/accounts/login/", data={
        "username": "admin", "password": "admin", "csrfmiddlewaretoken": session.cookies["csrftoken"],
    }, headers={"Referer": page.url}, timeout=10)
    return session
