"""Traces and decisions on a real lab (``manage.py lab``, real Docker) seen in a real Chromium:
a RunTask's trace spans the request to RUNNING; a killed container heals in one trace linked
from the service event that started the replacement; a placement lists every instance."""
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.support.browser import admin_page, wait_live
from tests.support.common import wait_until
from tests.support.lab import LabProcess, lab_containers, poll, remove_lab_objects
from tests.support.api import FARGATE

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def task_definition(family, cpu=256, memory=512):
    return {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": str(cpu), "memory": str(memory),
        "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True,
                                  "portMappings": [{"containerPort": 80}]}],
    }


@pytest.fixture
def tab(browser, lab):
    page = admin_page(browser, lab.url, {"width": 1400, "height": 1000})
    yield page
    page.context.close()


def last_status(ecs, arn):
    return ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]["lastStatus"]


def started_by(tab, lab, task_arn):
    """The trace that started a task, as its page links it."""
    tab.goto(f"{lab.url}/tasks/{task_arn.rsplit('/', 1)[1]}/")
    return tab.locator(".task-traces a[data-trace]").first.get_attribute("data-trace")


def test_a_run_tasks_trace_lists_its_steps_in_order_and_spans_the_request_to_running(lab, tab):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**task_definition("web"))

    # The map's frontend card links each recent call to its trace: the write is a step of it.
    tab.goto(lab.url + "/")
    tab.locator('.card[data-component="frontend"] tr[data-operation=CreateCluster] a').click()
    expect(tab.locator("tr.trace-step").first).to_have_attribute("data-action", "CreateCluster")
    expect(tab.locator("tr.trace-step[data-component=state_database]")).to_contain_text("etcd")

    # The wall time from the call to RUNNING, bracketed by the polls: RUNNING was written after
    # the last poll that did not see it began, and before the first that saw it ended.
    polls = {}

    def running():
        asked = time.perf_counter()
        seen = last_status(ecs, arn) == "RUNNING"
        polls["seen" if seen else "not_yet"] = (asked, time.perf_counter())
        return seen

    began = time.perf_counter()
    arn = ecs.run_task(cluster="demo", taskDefinition="web", count=1, **FARGATE)["tasks"][0]["taskArn"]
    polls["not_yet"] = (began, began)
    wait_until(running, timeout=30, interval=0.005, message="RUNNING")
    wall_min_ms = (polls["not_yet"][0] - began) * 1000
    wall_max_ms = (polls["seen"][1] - began) * 1000

    trace_id = started_by(tab, lab, arn)
    body = tab.request.get(f"{lab.url}/traces/{trace_id}.json").json()
    steps = body["steps"]
    assert body["trace_id"] == trace_id
    starts = [s["start_ms"] for s in steps]
    assert starts == sorted(starts) and starts[0] == 0
    assert all(s["duration_ms"] >= 0 and s["kubernetes"] for s in steps)
    done = [(s["component"], s["action"]) for s in steps]
    for expected in [("frontend", "RunTask"), ("state_database", "write"), ("capacity_manager", "place"),
                     ("agent", "create"), ("agent", "start"), ("agent", "running")]:
        assert expected in done, expected
    assert done.index(("frontend", "RunTask")) < done.index(("capacity_manager", "place")) \
        < done.index(("agent", "create")) < done.index(("agent", "start")) < done.index(("agent", "running"))
    span_ms = max(s["start_ms"] + s["duration_ms"] for s in steps)
    assert 0.9 * wall_min_ms <= span_ms <= 1.1 * wall_max_ms, (span_ms, wall_min_ms, wall_max_ms, steps)

    # The page: one row per step, in order, each with its duration and Kubernetes counterpart.
    tab.goto(f"{lab.url}/traces/{trace_id}/")
    rows = tab.locator("tr.trace-step")
    expect(rows).to_have_count(len(steps))
    for n, step in enumerate(steps):
        row = rows.nth(n)
        expect(row).to_have_attribute("data-action", step["action"])
        expect(row.locator("td.k8s")).to_contain_text(step["kubernetes"])
        expect(row.locator("[data-field=duration_ms]")).not_to_be_empty()
        expect(row.locator("svg rect")).to_have_count(1)
    expect(tab.locator("tr.trace-step[data-action=create] td.k8s")).to_contain_text("CreateContainer")
    replay = tab.locator("#replay")
    assert replay.get_attribute("href") == f"/?replay={trace_id}"

    # Traces live in the state database: a restarted lab still has this one.
    lab.restart()
    assert tab.request.get(f"{lab.url}/traces/{trace_id}.json").json()["steps"] == steps


def test_a_killed_service_container_heals_in_one_trace_linked_from_the_service_event(lab, tab, docker_client):
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**task_definition("web"))
    service_arn = ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web",
                                     desiredCount=3, **FARGATE)["service"]["serviceArn"]
    poll(lambda: ecs.describe_services(cluster="demo", services=["web"])["services"][0]["runningCount"] == 3,
         message="3 running")
    running_before = [c.labels["fargatelab.task-arn"] for c in lab_containers(docker_client, lab.lab_id)]
    # The service page is open while the container dies: its events and reconcile loop move live.
    tab.goto(f"{lab.url}/clusters/demo/")
    tab.click("a:text-is('web')")
    wait_live(tab)
    tab.evaluate("window.notReloaded = true")
    victim = lab_containers(docker_client, lab.lab_id)[0]
    victim_arn = victim.labels["fargatelab.task-arn"]
    victim.kill()

    def replacement():
        arns = ecs.list_tasks(cluster="demo", serviceName="web", desiredStatus="RUNNING")["taskArns"]
        tasks = ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"] if arns else []
        running = [t["taskArn"] for t in tasks if t["lastStatus"] == "RUNNING" and t["taskArn"] != victim_arn]
        return running if len(running) == 3 else None

    [new_arn] = set(poll(replacement, message="3 running tasks again")) - set(running_before)

    # The service event that started the replacement links its trace; the browser follows it.
    event = tab.locator(".events li", has_text=f"has started 1 tasks: (task {new_arn.rsplit('/', 1)[1]})")
    expect(event.locator("a.trace-link")).to_have_count(1)
    expect(tab.locator("tr.reconcile-pass", has_text="start 1")).not_to_have_count(0)
    assert tab.evaluate("window.notReloaded") is True
    event.locator("a.trace-link").click()
    expect(tab.locator("h1")).to_contain_text("Trace")
    trace_id = tab.url.rstrip("/").rsplit("/", 1)[1]

    steps = tab.request.get(f"{lab.url}/traces/{trace_id}.json").json()["steps"]
    done = [(s["component"], s["action"], s["object_arn"]) for s in steps]
    assert done[0] == ("docker", "die", victim_arn)
    # One trace from the death to the replacement RUNNING, in the order things happened.
    chain = [("agent", "died", victim_arn), ("agent", "stopped", victim_arn),
             ("cluster_manager", "start-task", new_arn), ("capacity_manager", "place", new_arn),
             ("agent", "create", new_arn), ("agent", "start", new_arn), ("agent", "running", new_arn)]
    for expected in chain:
        assert expected in done, (expected, done)
    assert done.index(chain[0]) < done.index(chain[2]) < done.index(chain[3]) < done.index(chain[4]) \
        < done.index(chain[5]) < done.index(chain[6])
    reconciles = [s["message"] for s in steps if s["action"] == "reconcile"]
    assert any("desired 3, running 2" in m and "start 1" in m for m in reconciles), reconciles
    expect(tab.locator("tr.trace-step").first).to_have_attribute("data-component", "docker")
    expect(tab.locator("tr.trace-step[data-action=place]")).to_contain_text("kube-scheduler")

    # The service page shows the reconcile loop, the pass that started the replacement among it,
    # linked to this trace.
    tab.go_back()
    passes = tab.locator("tr.reconcile-pass", has_text="desired 3, running 2")
    expect(passes.filter(has_text="start 1").locator(f"a[href='/traces/{trace_id}/']")).to_have_count(1)


@pytest.fixture
def small_fleet_lab(tmp_path, docker_client, lab_demo_image):
    """A lab whose fleet is three instances of 1024 CPU units and 2048 MiB that never grows."""
    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", extra_env={
        "FARGATE_LAB_WARM_POOL": "3", "FARGATE_LAB_MAX_INSTANCES": "3",
        "FARGATE_LAB_INSTANCE_CPU": "1024", "FARGATE_LAB_INSTANCE_MEMORY": "2048",
    })
    lab.start()
    yield lab
    lab.stop()
    remove_lab_objects(docker_client, lab.lab_id)


def test_a_placement_decision_lists_each_instance_considered_with_its_reason(small_fleet_lab, browser):
    lab = small_fleet_lab
    ecs = lab.client()
    ecs.create_cluster(clusterName="demo")
    for family, cpu, memory in (("big", 1024, 2048), ("small", 512, 1024)):
        ecs.register_task_definition(**task_definition(family, cpu, memory))

    def run(family):
        arn = ecs.run_task(cluster="demo", taskDefinition=family, **FARGATE)["tasks"][0]["taskArn"]
        poll(lambda: last_status(ecs, arn) == "RUNNING", message=f"the {family} task RUNNING")
        return arn

    run("big")  # fills one instance
    small = run("small")
    second_big = run("big")
    waiting = ecs.run_task(cluster="demo", taskDefinition="big", **FARGATE)["tasks"][0]["taskArn"]

    def decision_of(page, arn):
        page.goto(f"{lab.url}/tasks/{arn.rsplit('/', 1)[1]}/")
        return page.locator("#placement-decision")

    page = admin_page(browser, lab.url, {"width": 1400, "height": 1000})
    try:
        # The small task: one instance is full (the big task has all of it), the two others scored.
        decision = decision_of(page, small)
        full = decision.locator("tr[data-verdict=rejected]")
        expect(full).to_have_count(1)
        expect(full).to_contain_text("CPU short by 512 units")
        expect(full).to_contain_text("memory short by 1024 MiB")
        first = full.get_attribute("data-instance")
        expect(decision.locator("tr[data-verdict=chosen]")).to_have_count(1)
        expect(decision.locator("tr[data-verdict=chosen]")).to_contain_text("most room")
        expect(decision.locator("tr[data-verdict=scored]")).to_have_count(1)
        chosen = decision.locator("tr[data-verdict=chosen]").get_attribute("data-instance")

        # The second big task: the full one and the one half used are rejected, each with its shortfall.
        decision = decision_of(page, second_big)
        expect(decision.locator("tr[data-verdict=rejected]")).to_have_count(2)
        expect(decision.locator(f"tr[data-instance={first}]")).to_contain_text("CPU short by 1024 units")
        expect(decision.locator(f"tr[data-instance={chosen}]")).to_contain_text("CPU short by 512 units")
        expect(decision.locator("tr[data-verdict=chosen]")).to_have_count(1)

        # The last fits nowhere now: every instance rejected, the task waits.
        decision = decision_of(page, waiting)
        expect(decision.locator("tr[data-verdict=rejected]")).to_have_count(3)
        expect(decision.locator("tr[data-verdict=chosen]")).to_have_count(0)
        expect(decision.locator(f"tr[data-instance={chosen}]")).to_contain_text("CPU short by 512 units")
        assert last_status(ecs, waiting) == "PROVISIONING"

        # The same record is the placement step of the small task's trace.
        page.goto(f"{lab.url}/tasks/{small.rsplit('/', 1)[1]}/")
        page.locator(".task-traces a[data-trace]").first.click()
        step = page.locator("tr.trace-step[data-action=place]")
        expect(step.locator("tr.verdict-rejected")).to_contain_text("CPU short by 512 units")
    finally:
        page.context.close()
