"""The map as a diagram: its server render with 1,000 tasks, and event → animation in Chromium
with 50 pages open.

    /work/venv/bin/python bench/bench_map.py [--tasks 1000] [--pages 50] [--browsers 10] [--events 30] [--only write|docker]

1. Render: ``GET /`` (the diagram and the cards below it) through Django's test client, median
   and max of 20, with ``--tasks`` tasks in a throwaway SQLite database, and its SQL statements
   (the same count with 10 tasks: no query per row). Target: ≤ 50 ms.
2. Event → animation: ``--pages`` pages hold the map open against uvicorn (lifespan off):
   ``--browsers`` of them are real Chromium pages, the rest WebSocket clients (in a process of
   their own) that read every push as a page would. The clock stops when each Chromium page
   starts the animation (the lit log's ``data-at``, ``Date.now()`` on the same machine's clock).
   Target: p95 ≤ 150 ms. Measured twice:
   a. the agent's write alone: the row ``Agent.record_operation`` writes for a ``die`` (clock from
      just before the write);
   b. a real Docker ``die``: the lab's agent watches the engine's events in this process, as in
      ``manage.py lab``; the bench starts a container carrying the lab's labels and kills it
      (clock from the ``die`` event's own time, ``timeNano``, read from the engine).
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
WORKDIR = tempfile.mkdtemp(prefix="fargate-lab-bench-map-")
os.environ["FARGATE_LAB_DB"] = os.path.join(WORKDIR, "lab.sqlite3")
os.environ["FARGATE_LAB_VAR"] = WORKDIR
os.environ["FARGATE_LAB_ID"] = f"bench-map-{uuid.uuid4().hex[:8]}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the bench's ORM calls are plain sync code

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from bench.bench_dashboard import percentile  # noqa: E402
from dashboard.screenshot import CHROMIUM, CHROMIUM_ARGS, serve  # noqa: E402

PASSWORD = "bench-password"
EVENT_SEQ = re.compile(r'<li data-seq="(\d+)"')


def render_times(client, url="/", repeat=20):
    """Wall and CPU milliseconds of ``repeat`` renders of ``url`` (the request runs in this thread)."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = client.get(url)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return wall, cpu


def queries(client):
    with CaptureQueriesContext(connection) as captured:
        client.get("/")
    return len(captured)


def bench_render(client, tasks):
    """Median / max render of the map with few tasks and with ``tasks`` tasks, and their queries."""
    from dashboard import sample

    sample.populate(tasks=10, instances=4)
    few_queries = queries(client)
    few, few_cpu = render_times(client)
    sample.add_tasks(tasks - 10)
    many_queries = queries(client)
    many, many_cpu = render_times(client)
    login, login_cpu = render_times(Client(), "/accounts/login/")
    from orchestrator.models import Task

    print(f"== GET / (the map) with {Task.objects.count()} tasks: median {statistics.median(many):.1f} ms wall, "
          f"{statistics.median(many_cpu):.1f} ms CPU (max {max(many):.1f} ms wall), {many_queries} SQL statements "
          f"(target ≤ 50 ms)")
    print(f"   with 10 tasks: median {statistics.median(few):.1f} ms wall, {statistics.median(few_cpu):.1f} ms CPU, "
          f"{few_queries} SQL statements")
    print(f"   the login page, for scale on this machine now: {statistics.median(login):.1f} ms wall, "
          f"{statistics.median(login_cpu):.1f} ms CPU; load average {os.getloadavg()[0]:.1f}")


async def hold_sockets(url, session, count):
    """``count`` WebSocket clients on the map reading every push, until a line on stdin; then
    prints, as JSON, the times (ms since epoch) each client received each event (activity pk)."""
    import websockets

    origin = url.replace("ws://", "http://").split("/ws/")[0]
    headers = {"Cookie": f"sessionid={session}", "Origin": origin}
    sockets = [await websockets.connect(url, additional_headers=headers, max_size=None) for _ in range(count)]
    received = {}

    async def read(ws):
        try:
            while True:
                message = await ws.recv()
                at = time.time() * 1000
                for pk in EVENT_SEQ.findall(message):
                    received.setdefault(pk, []).append(at)
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*readers, return_exceptions=True)
    print(json.dumps(received), flush=True)


def start_sockets(port, session, count):
    """The WebSocket clients in a process of their own, so they take nothing from the server's interpreter."""
    process = subprocess.Popen([sys.executable, __file__, "--sockets", str(count), "--url", f"ws://127.0.0.1:{port}/ws/map/",
                                "--session", session], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready", "the WebSocket clients did not connect"
    return process


def stop_sockets(process):
    """{activity pk: [receive times]} from the clients' process."""
    output, _ = process.communicate("stop\n", timeout=60)
    return {int(pk): times for pk, times in json.loads(output.strip().splitlines()[-1]).items()}


# Each page notes when an event's item arrives in #map-events (before the map's script plays it).
ARRIVALS = """document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("map-events");
  if (!list) { return; }
  new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach((n) => {
    if (n.nodeType === 1 && n.tagName === "LI" && !n.dataset.arrived) { n.dataset.arrived = String(Date.now()); }
  }))).observe(list, { childList: true });
});"""
# [when the page lit the first component for activity row pk, when its item arrived], or null.
LIT = """(pk) => { const e = document.querySelector(`#map-lit-log li[data-event='${pk}']`);
  const li = document.querySelector(`#map-events li[data-seq='${pk}']`);
  return e && li ? [Number(e.dataset.at), Number(li.dataset.arrived || e.dataset.at)] : null; }"""


# The pk of the die event the lab's agent wrote for the task's container, read from the page's
# event list: polling the state database for it from the server's own process (every 10 ms) took
# the interpreter from the fan-out being measured.
DIE_ITEM = """(taskId) => { const li = [...document.querySelectorAll('#map-events li[data-action=die]')]
  .find((item) => item.dataset.object === taskId.slice(0, 8));
  return li ? li.dataset.seq : null; }"""


def docker_die(arn):
    """The row the agent writes when Docker reports a container's die event; (pk, ms since epoch just before)."""
    from orchestrator import activity

    started = time.time() * 1000
    row = activity.record("docker", "die", arn, "container web of task bench died (exit code 137)")
    return row.pk, started


def docker_kills(docker_client, lab_id):
    """A source of real Docker die events: start a container with the lab's labels, kill it;
    yields (the ``die`` event's time in ms since epoch, the object id the map names)."""
    events = docker_client.events(filters={"type": "container", "event": "die", "label": f"fargatelab.lab={lab_id}"},
                                  decode=True)

    def kill():
        task_id = uuid.uuid4().hex
        container = docker_client.containers.run(
            "fargate-lab/demo:latest", ["sleep", "600"], entrypoint=[], detach=True,
            labels={"fargatelab.lab": lab_id, "fargatelab.task-arn": f"arn:aws:ecs:us-east-1:000000000000:task/bench/{task_id}",
                    "fargatelab.task-id": task_id, "fargatelab.container-name": "web"})
        time.sleep(0.3)  # the create and start events pass before the kill is timed
        container.kill()
        for event in events:
            if event.get("id") == container.id:
                return event["timeNano"] / 1e6, task_id
    return kill


def bench_animation(port, session, pages, browsers, events, docker_kill=None, hops=None):
    from playwright.sync_api import sync_playwright

    from orchestrator.models import Task

    arn = Task.objects.filter(last_status=Task.RUNNING).select_related("account", "cluster").first().arn
    origins = {}
    sockets = start_sockets(port, session, pages - browsers)
    latencies, arrivals = [], []
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        context.add_init_script(ARRIVALS)
        login = context.new_page()
        login.goto(base + "/accounts/login/")
        login.fill("input[name=username]", "bench")
        login.fill("input[name=password]", PASSWORD)
        login.click("button[type=submit]")
        login.wait_for_url(base + "/")
        tabs = [login] + [context.new_page() for _ in range(browsers - 1)]
        for tab in tabs[1:]:
            tab.goto(base + "/")
        for tab in tabs:
            tab.wait_for_selector("#live-status[data-state=open]")
        time.sleep(1.0)  # let the sockets' first pushes settle before measuring
        for _ in range(events):
            if docker_kill:
                started, task_id = docker_kill()
                pk = int(tabs[0].wait_for_function(DIE_ITEM, arg=task_id, timeout=10_000, polling=100).json_value())
            else:
                pk, started = docker_die(arn)
            origins[pk] = started
            for tab in tabs:
                handle = tab.wait_for_function(LIT, arg=str(pk), timeout=10_000, polling=100)
                lit, arrived = handle.json_value()
                latencies.append(lit - started)
                arrivals.append(arrived - started)
            time.sleep(0.3)  # events apart, as a kill and its replacement are
        browser.close()
    received = stop_sockets(sockets)
    what = "a real Docker die (event time)" if docker_kill else "the agent's die row (write)"
    print(f"== {what} → animation started, {pages} pages open ({browsers} Chromium, "
          f"{pages - browsers} WebSocket clients), {events} events: p50 {percentile(latencies, 0.5):.0f} ms, "
          f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms (target p95 ≤ 150 ms)")
    if hops:
        for name, values in hops().items():
            print(f"   of which the die event's time → {name}: p50 {percentile(values, 0.5):.1f} ms, "
                  f"p95 {percentile(values, 0.95):.1f} ms, max {max(values):.1f} ms")
    pushed = [at - origins[pk] for pk, times in received.items() if pk in origins for at in times]
    since = "the die event's time" if docker_kill else "the write"
    if pushed:
        print(f"   of which {since} → event pushed to the WebSocket clients: p50 {percentile(pushed, 0.5):.0f} ms, "
              f"p95 {percentile(pushed, 0.95):.0f} ms ({len(pushed)} receipts)")
    print(f"   of which {since} → the event's item in each Chromium page's DOM: p50 {percentile(arrivals, 0.5):.0f} ms, "
          f"p95 {percentile(arrivals, 0.95):.0f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--browsers", type=int, default=10)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--only", choices=("write", "docker"), help="measure only this event source (the render too)")
    parser.add_argument("--sockets", type=int, help=argparse.SUPPRESS)  # the WebSocket clients' own process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--session", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sockets:
        asyncio.run(hold_sockets(args.url, args.session, args.sockets))
        return

    call_command("migrate", verbosity=0)
    setup_test_environment()
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", password=PASSWORD, is_staff=True)
    client = Client()
    client.force_login(user)
    bench_render(client, args.tasks)
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"Chromium is missing at {CHROMIUM}: the animation is measured in a real browser")
    server, port = serve()
    try:
        session = client.cookies["sessionid"].value
        if args.only != "docker":
            bench_animation(port, session, args.pages, args.browsers, args.events)
        if args.only != "write":
            bench_docker(port, session, args)
    finally:
        server.should_exit = True


def bench_docker(port, session, args):
    """The same with real Docker events, seen by the lab's agent; its containers removed after."""
    import docker

    from django.conf import settings

    from orchestrator.agent import Agent

    lab_id = settings.FARGATE_LAB["LAB_ID"]
    docker_client = docker.from_env()
    agent = Agent(None, enqueue=lambda key: None)  # watches and records; nothing acts on the keys
    hops = watch_hops(agent)
    agent.start()
    agent.connected.wait(10)
    try:
        bench_animation(port, session, args.pages, args.browsers, args.events, docker_kills(docker_client, lab_id),
                        hops)
    finally:
        agent.stop()
        for container in docker_client.containers.list(all=True, filters={"label": f"fargatelab.lab={lab_id}"}):
            container.remove(force=True)


def watch_hops(agent):
    """Time each die event's hops in the agent (received from the stream, its row written);
    returns a function giving {hop: [ms after the event's own time]}."""
    times = {"the agent's receipt": [], "the agent's row written": []}
    died_at = {}
    handle_event, record_operation = agent.handle_event, agent.record_operation

    def timed_handle(event):
        if (event.get("Action") or "") == "die":
            died_at[event.get("id")] = event["timeNano"] / 1e6
            times["the agent's receipt"].append(time.time() * 1000 - died_at[event.get("id")])
        handle_event(event)

    def timed_record(action, container_id, attributes, trace=""):
        record_operation(action, container_id, attributes, trace)
        if action == "die" and container_id in died_at:
            times["the agent's row written"].append(time.time() * 1000 - died_at[container_id])

    agent.handle_event, agent.record_operation = timed_handle, timed_record
    return lambda: {hop: values for hop, values in times.items() if values}


if __name__ == "__main__":
    main()
