"""The Application Load Balancer: its data plane, and the hooks the control plane calls.

The ALB maps to Kubernetes' Service of type LoadBalancer (or an Ingress) and its Endpoints:
a listener port on the host answers HTTP and forwards round robin to the healthy targets of
its target group. The API that manages it is ``orchestrator.elbv2``; this module serves it.

``DataPlane`` runs an asyncio loop (aiohttp server and client) on a thread of its own, and a
sync thread that copies the state database into it (level-triggered: on a bus event, and
every second for changes made by another process) and writes health back.

Hooks for the control plane (the agent and the cluster manager):
  ``register_task(task)``   registers a service task's containers in its target groups;
  ``deregister_task(task)`` starts draining them, returns the seconds draining takes;
  ``is_drained(task)``      True once no target of the task is still draining;
  ``task_health(task)``     "healthy" / "unhealthy" / "initial", or None outside any group.
"""
import asyncio
import collections
import logging
import queue
import random
import threading
import time
import uuid

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from django.db import close_old_connections, connection
from django.db.models import Prefetch
from django.utils import timezone

from orchestrator import activity, bus, host_firewall, traces
from orchestrator.docker_engine import lab_id
from orchestrator.elbv2 import attributes as elb_attributes
from orchestrator.elbv2 import operations
from orchestrator.elbv2 import rules as elb_rules
from orchestrator.elbv2.protocol import ElbError
from orchestrator.frontend import wire
from orchestrator.models import Listener, LoadBalancer, Target, TargetGroup, Task, acting_in

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business, never forwarded.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-connection",
}
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}
# Responses up to this size are read whole; larger or unsized ones are streamed.
BUFFER_LIMIT = 1024 * 1024
# Least time between two syncs of the data plane from the state database, in seconds.
MIN_SYNC_SPACING = 0.1


# --- hooks for the control plane ----------------------------------------------------------


def _task_targets(task):
    """(target group, target id, port, address, connect port) for each of the task's load balancer entries."""
    if task.service_id is None:
        return []
    # Re-read: the agent writes private_ip and the bindings just before it registers.
    task = Task.objects.select_related(
        "service", "deployment", "account", "cluster", "container_instance").get(pk=task.pk)
    result = []
    for entry in task.load_balancers:
        try:
            with acting_in(task.cluster.region):  # the target groups of the task's region
                tg = operations.get_target_group(task.account, entry.get("targetGroupArn", ""))
        except ElbError as exc:
            log.warning("task %s: target group %s: %s", task.task_id, entry.get("targetGroupArn"), exc.message)
            continue
        container_port = int(entry.get("containerPort") or 0)
        container = task.containers.filter(name=entry.get("containerName", "")).first()
        bindings = [b for b in (container.network_bindings if container else []) if int(b.get("containerPort", 0)) == container_port]
        if bindings:
            address = bindings[0].get("bindIP") or "127.0.0.1"
            address = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
            connect_port = int(bindings[0]["hostPort"])
        elif task.private_ip:  # no published port: the task's own address (reachable on Linux hosts)
            address, connect_port = task.private_ip, container_port
        else:
            log.warning("task %s: container %s has no binding for port %s", task.task_id, entry.get("containerName"), container_port)
            continue
        if tg.target_type == "ip":
            target_id, port = task.private_ip or address, container_port
        else:
            instance = task.container_instance
            target_id, port = (instance.instance_id if instance else address), connect_port
        result.append((tg, target_id, port, address, connect_port))
    return result


def register_task(task):
    """Register the task in its service's target groups (it starts "initial"); returns the Target rows.

    Call it once the task's network_bindings and private_ip are written (still ACTIVATING).
    Returns once the rows are written: the data plane health-checks them from its next sync,
    which the bus event triggers at once in this process.
    """
    targets = []
    for tg, target_id, port, address, connect_port in _task_targets(task):
        targets.append(operations.register(tg, target_id, port, address, connect_port, task=task))
        activity.record("load_balancer", "register_task", task.arn,
                        f"registered {target_id}:{port} in {tg.name}", trace_id=traces.current() or task.trace_id)
    return targets


def _service_group_arns(task):
    """The target groups the task's service registers it in (empty for a task of no service)."""
    if task.service_id is None:
        return set()
    return {entry.get("targetGroupArn") for entry in task.load_balancers}


def _service_targets(task):
    """The task's targets in its service's target groups (not those registered by hand)."""
    arns = _service_group_arns(task)
    return [t for t in Target.objects.filter(task=task).select_related("target_group__account") if t.target_group.arn in arns]


def deregister_task(task):
    """Start draining the task's targets; returns the seconds until they are drained (0 if none).

    A target registered by hand (RegisterTargets) is removed at once: the task's address leaves
    the VPC with it, as on ECS, where nothing drains such a target and the stop does not wait.
    """
    delay = 0.0
    arns = _service_group_arns(task)
    for target in Target.objects.filter(task=task).exclude(state=Target.DRAINING).select_related("target_group__account"):
        if target.target_group.arn not in arns:
            Target.objects.filter(pk=target.pk).delete()
            bus.publish("target", target.pk)
            activity.record("load_balancer", "deregister_task", task.arn,
                            f"removed {target.target_id}:{target.port} from {target.target_group.name}: "
                            "the task's address leaves the VPC", trace_id=task.trace_id)
            continue
        delay = max(delay, operations.drain(target))
        activity.record("load_balancer", "deregister_task", task.arn,
                        f"draining {target.target_id}:{target.port} from {target.target_group.name} "
                        f"for {target.target_group.deregistration_delay:g} s",
                        trace_id=traces.current() or task.trace_id)
    return delay


def is_drained(task):
    """True once none of the task's targets is still draining (drained ones are forgotten)."""
    operations.forget_drained(Target.objects.filter(task=task))
    return not Target.objects.filter(task=task, state=Target.DRAINING).exists()


def task_health(task):
    """The task's health as its service's target groups see it: any unhealthy target makes it
    "unhealthy", all healthy make it "healthy", otherwise "initial"; None when it is in none."""
    states = {t.state for t in _service_targets(task) if t.state != Target.DRAINING}
    if not states:
        return None
    if Target.UNHEALTHY in states:
        return "unhealthy"
    if states == {Target.HEALTHY}:
        return "healthy"
    return "initial"


# --- the data plane -----------------------------------------------------------------------


class TargetRuntime:
    """One target as the proxy sees it: where to connect, and the health observed so far."""

    def __init__(self, row):
        self.pk = row["pk"]
        self.address = row["address"]
        self.connect_port = row["connect_port"]
        self.state = row["state"] if row["state"] != Target.DRAINING else Target.INITIAL
        self.draining = row["state"] == Target.DRAINING
        self.successes = 0
        self.failures = 0
        self.refused_until = 0.0
        self.checker = None

    @property
    def base_url(self):
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.connect_port}"


class GroupRuntime:
    """One target group: its health check settings, its targets, and the round-robin cursor."""

    def __init__(self, pk):
        self.pk = pk
        self.config = {}
        self.targets = {}
        self.cursor = 0

    def pick(self, tried):
        """The next target round robin: healthy ones first; if none is healthy, any registered
        one (ELB "fails open" when all targets are unhealthy); never a draining one."""
        now = time.monotonic()
        live = [t for t in self.targets.values() if not t.draining and t.pk not in tried]
        pool = [t for t in live if t.state == Target.HEALTHY and t.refused_until <= now]
        if not pool and not any(t.state == Target.HEALTHY for t in self.targets.values() if not t.draining):
            pool = [t for t in live if t.refused_until <= now]
        if not pool:
            pool = [t for t in live if t.state == Target.HEALTHY]
        if not pool:
            return None
        self.cursor += 1
        return pool[self.cursor % len(pool)]


class ListenerRuntime:
    """One listener: its aiohttp server bound on the listen address and its actions."""

    def __init__(self, pk, port):
        self.pk = pk
        self.port = port
        self.actions = []
        self.rules = []
        self.idle_timeout = 60.0
        self.xff_mode, self.xff_client_port = "append", False
        self.response_headers = []
        self.runner = None


class DataPlane:
    """The listeners and health checks of every load balancer, on one event loop thread.

    ``start()`` binds every listener before it returns; ``stop()`` closes them. ``sync()``
    copies the state database in (tests may call it directly); the sync thread calls it on
    bus events and every ``sync_seconds``.
    """

    def __init__(self, sync_seconds=1.0, listen_address=None):
        self.sync_seconds = sync_seconds
        self.listen_address = listen_address or operations.listen_address()
        self.loop = None
        self.listeners = {}
        self.groups = {}
        self.session = None
        self._loop_thread = None
        self._sync_thread = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._health_updates = queue.Queue()
        self._unsubscribe = None
        self._sync_lock = threading.Lock()
        self._serving = True  # the last sync found listeners (until then, assume so)
        self._guarded_ports = None  # the listener ports the host firewall last let tasks reach

    # --- lifecycle ------------------------------------------------------------------------

    def start(self):
        """Start the loop and sync threads and bind the listeners found in the database."""
        self.loop = new_event_loop()
        ready = threading.Event()
        self._loop_thread = threading.Thread(target=self._run_loop, args=(ready,), name="elb-data-plane", daemon=True)
        self._loop_thread.start()
        ready.wait()
        self._call(self._open_session())
        self.sync()
        self._unsubscribe = bus.subscribe(self._on_change)
        self._sync_thread = threading.Thread(target=self._sync_forever, name="elb-sync", daemon=True)
        self._sync_thread.start()

    def stop(self):
        """Close every listener, stop health checks and both threads."""
        self._stopping.set()
        self._wake.set()
        if self._unsubscribe:
            self._unsubscribe()
        if self._sync_thread:
            self._sync_thread.join(timeout=10)
        if self.loop is not None:
            self._call(self._shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join(timeout=10)
            self.loop.close()
            self.loop = None

    def _run_loop(self, ready):
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def _call(self, coroutine, timeout=30):
        """Run a coroutine on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def _on_change(self, kind, pk, **info):
        # A task's change matters only to the targets of listeners; with no listener at all the
        # periodic sync tidies up, and the control plane's task passes keep the interpreter.
        if kind in ("load_balancer", "listener", "target_group", "target") or (kind == "task" and self._serving):
            self._wake.set()

    def _sync_forever(self):
        """The sync thread: sync on every wake-up and at least every ``sync_seconds``."""
        try:
            while not self._stopping.is_set():
                self._wake.wait(self.sync_seconds)
                self._wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    close_old_connections()
                    self.sync()
                except Exception:  # a failed pass is retried on the next one
                    log.exception("load balancer sync failed")
                # A burst of task changes (a service of 20 starting) would otherwise keep this
                # thread syncing back to back; ten passes a second follow any change closely.
                self._stopping.wait(MIN_SYNC_SPACING)
        finally:
            connection.close()

    # --- sync from the state database ------------------------------------------------------

    def sync(self):
        """One pass: write observed health, forget drained targets, then make the loop's
        listeners, groups and targets match the database."""
        with self._sync_lock:
            self._write_health()
            operations.forget_drained()
            # Looked for first: a DELETE of nothing takes a turn at the write lock, ten times a second.
            stopped = list(Target.objects.filter(task__last_status=Task.STOPPED).values_list("pk", flat=True))
            if stopped:
                Target.objects.filter(pk__in=stopped, task__last_status=Task.STOPPED).delete()
            snapshot = self._snapshot()
            self._serving = bool(snapshot["listeners"])
            self._open_listener_ports(snapshot)
            bind_errors = self._call(self._apply(snapshot))
            self._write_bind_errors(snapshot, bind_errors)

    def _open_listener_ports(self, snapshot):
        """Let tasks reach a new listener port at once (the host firewall allows listener ports)."""
        ports = {spec["port"] for spec in snapshot["listeners"].values()}
        if ports != self._guarded_ports:
            self._guarded_ports = ports
            host_firewall.refresh(lab_id())

    def _snapshot(self):
        """Plain data of every listener and every target group a listener forwards to."""
        listeners = {}
        used = set()
        for listener in Listener.objects.select_related("load_balancer").prefetch_related(
                Prefetch("target_groups", TargetGroup.objects.select_related("account")), "rules"):  # tg.arn
            by_arn = {tg.arn: tg.pk for tg in listener.target_groups.all()}
            lb_attributes = elb_attributes.values(elb_attributes.LOAD_BALANCER, listener.load_balancer.attributes)
            listener_attributes = elb_attributes.values(elb_attributes.LISTENER, listener.attributes)
            listeners[listener.pk] = {
                "port": listener.port, "bind_error": listener.bind_error, "load_balancer": listener.load_balancer_id,
                "actions": _runtime_actions(listener.default_actions, by_arn, used),
                # Rules by priority, each a matcher and its actions, before the default actions.
                "rules": [(elb_rules.compile_conditions(rule.conditions), _runtime_actions(rule.actions, by_arn, used))
                          for rule in listener.rules.all()],
                "idle_timeout": float(lb_attributes["idle_timeout.timeout_seconds"]),
                "xff_mode": lb_attributes["routing.http.xff_header_processing.mode"],
                "xff_client_port": lb_attributes["routing.http.xff_client_port.enabled"] == "true",
                "response_headers": elb_attributes.response_headers(listener_attributes),
            }
        groups = {}
        for tg in TargetGroup.objects.filter(pk__in=used):
            groups[tg.pk] = {
                "config": {
                    "enabled": tg.health_check_enabled, "path": tg.health_check_path,
                    "port": tg.health_check_port, "interval": tg.health_check_interval,
                    "timeout": tg.health_check_timeout, "healthy": tg.healthy_threshold,
                    "unhealthy": tg.unhealthy_threshold, "matcher": tg.matcher, "name": tg.name,
                },
                "targets": {},
            }
        for row in Target.objects.filter(target_group_id__in=used).values(
            "pk", "target_group_id", "address", "connect_port", "state"
        ):
            groups[row["target_group_id"]]["targets"][row["pk"]] = row
        return {"listeners": listeners, "groups": groups}

    def _write_bind_errors(self, snapshot, bind_errors):
        """Record on each listener whether its port is served, and on its LB whether all are."""
        impaired = collections.defaultdict(list)
        for pk, spec in snapshot["listeners"].items():
            error = bind_errors.get(pk, "")
            if error:
                impaired[spec["load_balancer"]].append(error)
            if error != spec["bind_error"]:
                Listener.objects.filter(pk=pk).update(bind_error=error)
                bus.publish("listener", pk)
                if error:
                    log.error("listener %s: %s", pk, error)
                    activity.record("load_balancer", "listener.bind_failed", message=error)
        for lb in LoadBalancer.objects.filter(pk__in={s["load_balancer"] for s in snapshot["listeners"].values()}):
            state, reason = (LoadBalancer.ACTIVE_IMPAIRED, "; ".join(impaired[lb.pk])) if impaired[lb.pk] else (LoadBalancer.ACTIVE, "")
            if (lb.state, lb.state_reason) != (state, reason):
                LoadBalancer.objects.filter(pk=lb.pk).update(state=state, state_reason=reason)
                bus.publish("load_balancer", lb.pk)

    def _write_health(self):
        """Write the health transitions the checks observed since the last pass."""
        while True:
            try:
                pk, state, reason, description = self._health_updates.get_nowait()
            except queue.Empty:
                return
            changed = Target.objects.filter(pk=pk).exclude(state=Target.DRAINING).update(
                state=state, reason=reason, description=description, updated_at=timezone.now()
            )
            if changed:
                bus.publish("target", pk)
                target = Target.objects.select_related("target_group", "task").filter(pk=pk).first()
                if target is not None and state in (Target.HEALTHY, Target.UNHEALTHY):
                    activity.record(
                        "load_balancer", f"target.{state}", target.task.arn if target.task else target.target_group.arn,
                        f"{target.target_id}:{target.port} in {target.target_group.name} is {state}"
                        + (f" ({description})" if description else ""),
                        # Turning healthy ends the task's start; a failure starts a trace of its own
                        # when the service acts on it (elb_health).
                        trace_id=target.task.trace_id if target.task and state == Target.HEALTHY else "",
                    )

    # --- on the loop ----------------------------------------------------------------------

    async def _open_session(self):
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=60, sock_connect=5),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def _shutdown(self):
        for listener in list(self.listeners.values()):
            await self._close_listener(listener)
        self.listeners.clear()
        for group in self.groups.values():
            for target in group.targets.values():
                self._stop_checker(target)
        self.groups.clear()
        if self.session is not None:
            await self.session.close()

    async def _apply(self, snapshot):
        """Make the loop's state match the snapshot; returns {listener pk: bind error}."""
        for pk, group in list(self.groups.items()):
            if pk not in snapshot["groups"]:
                for target in group.targets.values():
                    self._stop_checker(target)
                del self.groups[pk]
        for pk, spec in snapshot["groups"].items():
            group = self.groups.setdefault(pk, GroupRuntime(pk))
            group.config = spec["config"]
            self._apply_targets(group, spec["targets"])
        errors = {}
        for pk, listener in list(self.listeners.items()):
            spec = snapshot["listeners"].get(pk)
            if spec is None or spec["port"] != listener.port:
                await self._close_listener(listener)
                del self.listeners[pk]
        for pk, spec in snapshot["listeners"].items():
            listener = self.listeners.get(pk)
            if listener is None:
                listener = ListenerRuntime(pk, spec["port"])
                error = await self._open_listener(listener)
                if error:
                    errors[pk] = error
                    continue
                self.listeners[pk] = listener
            listener.actions, listener.rules = spec["actions"], spec["rules"]
            listener.idle_timeout, listener.response_headers = spec["idle_timeout"], spec["response_headers"]
            listener.xff_mode, listener.xff_client_port = spec["xff_mode"], spec["xff_client_port"]
        return errors

    def _apply_targets(self, group, rows):
        for pk, target in list(group.targets.items()):
            if pk not in rows:
                self._stop_checker(target)
                del group.targets[pk]
        for pk, row in rows.items():
            target = group.targets.get(pk)
            if target is None:
                target = group.targets[pk] = TargetRuntime(row)
            draining = row["state"] == Target.DRAINING
            if target.draining and not draining:  # registered again: health starts over
                target.state, target.successes, target.failures = Target.INITIAL, 0, 0
            target.draining = draining
            target.address, target.connect_port = row["address"], row["connect_port"]
            if draining or not group.config["enabled"]:
                self._stop_checker(target)
            elif target.checker is None:
                target.checker = asyncio.ensure_future(self._check_forever(group, target))

    def _stop_checker(self, target):
        if target.checker is not None:
            target.checker.cancel()
            target.checker = None

    async def _open_listener(self, listener):
        """Bind the listener's port; returns an error message if it cannot be bound."""
        server = web.Server(lambda request: self._handle(request, listener), access_log=None)
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.listen_address, listener.port, reuse_address=True).start()
        except OSError as exc:
            await runner.cleanup()
            return f"port {listener.port} on {self.listen_address} cannot be bound: {exc.strerror or exc}"
        listener.runner = runner
        return ""

    async def _close_listener(self, listener):
        if listener.runner is not None:
            await listener.runner.cleanup()
            listener.runner = None

    # --- health checks --------------------------------------------------------------------

    async def _check_forever(self, group, target):
        """Check one target every interval, starting at once (so a new target soon serves)."""
        while True:
            ok, reason, description = await self._probe(group.config, target)
            self._observe(group, target, ok, reason, description)
            await asyncio.sleep(group.config["interval"])

    async def _probe(self, config, target):
        """One health check: (passed, reason, description) as DescribeTargetHealth words them."""
        port = target.connect_port if config["port"] == "traffic-port" else int(config["port"])
        host = f"[{target.address}]" if ":" in target.address else target.address
        url = f"http://{host}:{port}{config['path']}"
        try:
            async with self.session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=config["timeout"]),
                headers={"User-Agent": "ELB-HealthChecker/2.0"},
            ) as response:
                await response.read()
                if matches(config["matcher"], response.status):
                    return True, "", ""
                return False, "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{response.status}]"
        except asyncio.TimeoutError:
            return False, "Target.Timeout", "Request timed out"
        except (aiohttp.ClientError, OSError, ValueError):
            # ValueError: a path aiohttp cannot put in a URL; the check fails, the loop goes on.
            return False, "Target.FailedHealthChecks", "Health checks failed"

    def _observe(self, group, target, ok, reason, description):
        """Count one check and move the target's state by the group's thresholds.

        A new target turns healthy on its first passed check; a healthy one turns unhealthy
        after ``unhealthy`` failures in a row, an unhealthy one healthy after ``healthy``
        passes in a row (ELB's thresholds).
        """
        old = target.state
        if ok:
            target.successes, target.failures = target.successes + 1, 0
            target.refused_until = 0.0
            if old == Target.INITIAL or (old == Target.UNHEALTHY and target.successes >= group.config["healthy"]):
                target.state = Target.HEALTHY
        else:
            target.successes, target.failures = 0, target.failures + 1
            if old != Target.UNHEALTHY and target.failures >= group.config["unhealthy"]:
                target.state = Target.UNHEALTHY
        if target.state != old:
            self._health_updates.put((target.pk, target.state, reason, description))
            self._wake.set()
        elif old == Target.INITIAL and target.failures == 1:
            self._health_updates.put((target.pk, old, "Elb.InitialHealthChecking", ""))
            self._wake.set()

    # --- the proxy ------------------------------------------------------------------------

    async def _handle(self, request, listener):
        """Answer one request as the load balancer does, with the listener's response headers."""
        response = await self._route(request, listener)
        for name, value in listener.response_headers:
            response.headers[name] = value
        return response

    async def _route(self, request, listener):
        """The first action of the first rule whose conditions all match (by priority), else of
        the default actions: forward the request, or a fixed response."""
        actions = listener.actions
        if listener.rules:
            seen = _request_facts(request)
            actions = next((rule_actions for matcher, rule_actions in listener.rules if matcher(seen)), actions)
        if not actions:
            return _plain(503, "503 Service Temporarily Unavailable")
        action = actions[0]
        if action["type"] == "fixed-response":
            config = action["config"]
            return web.Response(status=int(config.get("StatusCode", 200)), text=config.get("MessageBody", ""),
                                content_type=config.get("ContentType", "text/plain"), headers={"Server": "awselb/2.0"})
        groups = [(self.groups.get(pk), weight) for pk, weight in action["groups"]]
        groups = [(g, w) for g, w in groups if g is not None and w > 0]
        if not groups:
            return _plain(503, "503 Service Temporarily Unavailable")
        group = groups[0][0] if len(groups) == 1 else random.choices([g for g, _ in groups], [w for _, w in groups])[0]
        return await self._forward(request, listener, group)

    async def _forward(self, request, listener, group):
        """Proxy to a target of ``group``; a target that refuses the connection (or, for an
        idempotent request, drops it before answering in full) is skipped and the next one tried."""
        body = await request.read()
        headers = _forward_headers(request, listener)
        skip = {h for h in ("User-Agent", "Accept", "Accept-Encoding") if h not in request.headers}
        tried = set()
        while True:
            target = group.pick(tried)
            if target is None:
                return _plain(503 if not tried else 502, "503 Service Temporarily Unavailable" if not tried else "502 Bad Gateway")
            tried.add(target.pk)
            try:
                return await self._exchange(request, target, headers, body, skip, listener.idle_timeout)
            except aiohttp.ClientConnectorError:
                # The target refused: keep it out of rotation until a health check passes.
                target.refused_until = time.monotonic() + max(group.config["interval"], 1.0)
                continue
            except asyncio.TimeoutError:
                return _plain(504, "504 Gateway Time-out")
            except aiohttp.ClientError as exc:
                # Dropped before a whole answer came back (a dying target's port proxy accepts,
                # then closes): nothing was sent to the client yet, so an idempotent request is
                # safe to try on the next target.
                log.debug("target %s:%s failed: %r", target.address, target.connect_port, exc)
                if request.method in IDEMPOTENT:
                    target.refused_until = time.monotonic() + max(group.config["interval"], 1.0)
                    continue
                return _plain(502, "502 Bad Gateway")

    async def _exchange(self, request, target, headers, body, skip, idle_timeout):
        """One request to one target; returns the response to send back. The load balancer's
        idle timeout bounds each wait for the target's bytes (a 504 when it runs out)."""
        async with self.session.request(
            request.method, target.base_url + request.rel_url.raw_path_qs, headers=headers,
            data=body or None, allow_redirects=False, skip_auto_headers=skip,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=idle_timeout),
        ) as upstream:
            out_headers = [(k, v) for k, v in upstream.headers.items()
                           if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
            length = upstream.content_length
            if length is not None and length <= BUFFER_LIMIT or request.method == "HEAD":
                payload = await upstream.read()
                response = web.Response(status=upstream.status, reason=upstream.reason, body=payload)
                response.headers.extend(out_headers)
                if request.method == "HEAD" and length is not None:
                    response.headers["Content-Length"] = str(length)
                return response
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(out_headers)
            if length is not None:
                response.content_length = length
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_chunked(65536):
                    await response.write(chunk)
            except aiohttp.ClientError:
                # The status line is out: all we can do is cut the client's connection short.
                response.force_close()
                return response
            await response.write_eof()
            return response


def new_event_loop():
    """uvloop's event loop when it is installed (it halves the proxy's overhead), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _runtime_actions(actions, by_arn, used):
    """A listener's or a rule's actions as the data plane takes them, in their order; adds the
    pks of the target groups they forward to into ``used``."""
    runtime = []
    for action in sorted(actions, key=lambda a: a.get("Order", 0)):
        if action.get("Type") == "forward":
            weighted = [(t.get("TargetGroupArn"), t.get("Weight", 1))
                        for t in (action.get("ForwardConfig") or {}).get("TargetGroups") or []]
            if not weighted:
                weighted = [(action.get("TargetGroupArn"), 1)]
            groups = [(by_arn[arn], weight) for arn, weight in weighted if arn in by_arn]
            used.update(pk for pk, _ in groups)
            runtime.append({"type": "forward", "groups": groups})
        else:
            runtime.append({"type": "fixed-response", "config": action.get("FixedResponseConfig") or {}})
    return runtime


def _request_facts(request):
    """What a listener rule's conditions look at in a request."""
    host = request.headers.get("Host", "")
    return {
        "method": request.method, "path": request.rel_url.path, "headers": request.headers,
        "host": host.rsplit(":", 1)[0] if not host.endswith("]") else host,
        "query": list(request.rel_url.query.items()), "source": request.remote or "",
    }


def _forward_headers(request, listener):
    """The request's headers for the target: hop-by-hop ones dropped, X-Forwarded-* added
    (X-Forwarded-For as the load balancer's routing.http.xff_* attributes say)."""
    headers = [(k, v) for k, v in request.headers.items()
               if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
    peer = request.remote or ""
    if listener.xff_client_port and request.transport is not None:
        peername = request.transport.get_extra_info("peername")
        if peername:
            peer = f"{peer}:{peername[1]}"
    forwarded_for = request.headers.get("X-Forwarded-For")
    headers = [(k, v) for k, v in headers if k.lower() not in ("x-forwarded-proto", "x-forwarded-port")
               and (listener.xff_mode == "preserve" or k.lower() != "x-forwarded-for")]
    if listener.xff_mode == "append":
        headers.append(("X-Forwarded-For", f"{forwarded_for}, {peer}" if forwarded_for else peer))
    headers += [
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", str(listener.port)),
    ]
    if "X-Amzn-Trace-Id" not in request.headers:
        headers.append(("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"))
    return CIMultiDict(_without_lab_cookies(headers))


def _without_lab_cookies(headers):
    """Drop the dashboard's own cookies from the Cookie headers a target gets.

    Browsers send a host's cookies to every port of it: a student who opens another
    student's listener on the lab's host name would otherwise hand that student's task
    their dashboard session.
    """
    from django.conf import settings

    lab_cookies = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
    kept = []
    for name, value in headers:
        if name.lower() == "cookie":
            value = "; ".join(c for c in (p.strip() for p in value.split(";"))
                              if c and c.split("=", 1)[0].strip() not in lab_cookies)
            if not value:
                continue
        kept.append((name, value))
    return kept


def _plain(status, text):
    """An answer the load balancer writes itself, signed as an ALB signs its own."""
    return web.Response(status=status, text=text + "\n", content_type="text/plain", headers={"Server": "awselb/2.0"})


def matches(matcher, status):
    """True if HTTP ``status`` is one of the matcher's codes ("200", "200-299", "200,202")."""
    for part in matcher.split(","):
        low, _, high = part.partition("-")
        low, high = wire.ascii_int(low.strip(), max_digits=3), wire.ascii_int((high or low).strip(), max_digits=3)
        if low is not None and high is not None and low <= status <= high:
            return True
    return False
