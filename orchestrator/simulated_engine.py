"""A simulated container runtime for instances without Docker: KWOK's idea (nodes without
kubelets) for the Fargate fleet, so that a class can watch the control plane place and run
thousands of tasks on a laptop.

An engine URL ``sim://<name>?<options>`` (in FARGATE_LAB_DOCKER_URL or FARGATE_LAB_ENGINES)
gives instances whose "containers" live in this process's memory. The agent drives them exactly
as it drives Docker (``DockerEngine``'s methods, the same inspect shape and event stream), so
everything above the runtime is the real lab: the frontend, the state database, the cluster and
capacity managers, the agent's passes, the dashboard. Nothing listens on a simulated task's
ports and nothing runs: its container "runs" until it is stopped, or exits by itself after the
configured time.

Options (all optional): ``cpus`` and ``memory`` (MiB) the engine reports (64 and 262144 by
default, so an instance holds 256 tasks of 0.25 vCPU), and latencies in seconds: ``pull`` (per
image pull), ``eni`` (per container create: the task's network interface), ``start`` (per
container start), ``exit`` (a running container exits with code 0 after this long; "never", the
default, runs until stopped) and ``stop`` (a SIGTERM'd container exits after this long). E.g.
``sim://kwok?cpus=128&pull=0.3&start=0.05``.
"""
import collections
import heapq
import itertools
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

from orchestrator.docker_engine import (
    LABEL_LAB, LABEL_TASK_ID, Conflict, ContainerNotFound, EngineError, NotOwned, _split_image, lab_id,
)

SCHEME = "sim://"
DEFAULTS = {"cpus": 64.0, "memory": 262144.0, "pull": 0.0, "eni": 0.0, "start": 0.0, "exit": None, "stop": 0.0}


def is_simulated(url):
    """Whether an engine URL names a simulated runtime."""
    return (url or "").startswith(SCHEME)


def options(url):
    """The simulation's options from its URL, with their defaults; raises EngineError on a bad one."""
    parts = urlsplit(url)
    found = dict(DEFAULTS)
    for key, values in parse_qs(parts.query).items():
        if key not in DEFAULTS:
            raise EngineError(f"simulated engine {url}: unknown option {key!r} (known: {', '.join(DEFAULTS)})")
        value = values[-1]
        if key == "exit" and value == "never":
            found[key] = None
            continue
        try:
            found[key] = float(value)
        except ValueError:
            raise EngineError(f"simulated engine {url}: {key}={value!r} is not a number") from None
        if found[key] < 0:
            raise EngineError(f"simulated engine {url}: {key} must not be negative")
    return found


def _rfc3339(at):
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if at else "0001-01-01T00:00:00Z"


class _Container:
    def __init__(self, container_id, spec, labels, ip):
        self.id = container_id
        self.name = spec["name"]
        self.image = spec["image"]
        self.labels = labels
        self.network = spec.get("network") or ""
        self.networks = [self.network] if self.network else []
        self.ip = ip
        self.ports = [(int(p), (proto or "tcp").lower()) for p, proto in spec.get("ports") or []]
        self.healthcheck = spec.get("healthcheck")
        self.state = "created"
        self.exit_code = 0
        self.started_at = 0.0
        self.finished_at = 0.0
        self.health = ""
        self.generation = 0  # bumped at each start, so that timers of an earlier run do nothing
        self.exited = threading.Event()

    @property
    def running(self):
        return self.state == "running"


class _EventStream:
    """The engine's events for one subscriber, until ``close()``."""

    def __init__(self, engine):
        self._engine = engine
        self._queue = queue.Queue()
        self._closed = False

    def put(self, event):
        self._queue.put(event)

    def __iter__(self):
        while True:
            event = self._queue.get()
            if event is None or self._closed:
                return
            yield event

    def waiting(self, limit):
        """Up to ``limit`` more events that have already arrived (none waited for): the agent
        records a burst of them (a batched pass's creates and starts) in one write."""
        found = []
        while len(found) < limit and not self._closed:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is None:
                self._queue.put(None)  # the end: ``__iter__`` sees it next
                break
            found.append(event)
        return found

    def close(self):
        self._closed = True
        self._engine._unsubscribe(self)
        self._queue.put(None)


class _LogStream:
    """A simulated container's output, followed until it exits or the reader closes it."""

    def __init__(self, lines, container, follow):
        self._lines, self._container, self._follow = lines, container, follow
        self._closed = threading.Event()

    def __iter__(self):
        yield from self._lines
        if self._follow:
            while not self._closed.is_set() and not self._container.exited.wait(0.5):
                pass

    def close(self):
        self._closed.set()


class SimulatedEngine:
    """DockerEngine's interface over containers that exist only in memory."""

    network_hooks = ()  # no bridge on this host to guard

    def __init__(self, url, lab=None):
        self.url = url
        self.lab = lab or lab_id()
        self.options = options(url)
        self._lock = threading.RLock()
        self._containers = {}  # id -> _Container
        self._names = {}  # name -> id
        self._by_task = {}  # task id label -> {container ids}: the agent lists one task's containers
        self._network_users = collections.Counter()  # network name -> containers attached to it
        self._images = set()
        self._networks = {}  # name -> id
        self._volumes = {}  # name -> labels (a simulated volume holds no files)
        self._addresses = {}  # network name -> next host number
        self._subscribers = []
        self._timers = []  # heap of (due, seq, container id, generation, what)
        self._seq = itertools.count()
        self._wake = threading.Condition(self._lock)
        threading.Thread(target=self._run_timers, name=f"simulated-engine-{urlsplit(url).netloc}", daemon=True).start()

    # --- the engine -----------------------------------------------------------------------

    def describe(self):
        return f"the simulated runtime {self.url.split('?', 1)[0]} (no Docker: containers are simulated)"

    @property
    def is_local(self):
        return False  # no bridge interfaces of this host to guard

    def ping(self):
        return True

    def resources(self):
        return int(self.options["cpus"] * 1024), int(self.options["memory"])

    def events(self, since=None, filters=None):
        stream = _EventStream(self)
        with self._lock:
            self._subscribers.append(stream)
        return stream

    def _unsubscribe(self, stream):
        with self._lock:
            if stream in self._subscribers:
                self._subscribers.remove(stream)

    def _emit(self, container, action, **attributes):
        now = time.time()
        event = {
            "Type": "container", "Action": action, "status": action, "id": container.id, "from": container.image,
            "Actor": {"ID": container.id, "Attributes": {**container.labels, "name": container.name,
                                                         "image": container.image, **attributes}},
            "time": int(now), "timeNano": int(now * 1e9),
        }
        for stream in list(self._subscribers):
            stream.put(event)

    def _schedule(self, delay, container, what):
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), container.id,
                                      container.generation, what))
        self._wake.notify()

    def _run_timers(self):
        with self._lock:
            while True:
                if not self._timers:
                    self._wake.wait()
                    continue
                due = self._timers[0][0] - time.monotonic()
                if due > 0:
                    self._wake.wait(due)
                    continue
                _, _, container_id, generation, what = heapq.heappop(self._timers)
                container = self._containers.get(container_id)
                if container is None or container.generation != generation or not container.running:
                    continue
                if what == "exit":
                    self._exit(container, 0)
                elif what == "healthy":
                    container.health = "healthy"
                    self._emit(container, "health_status: healthy")

    def _exit(self, container, code, signal=None):
        """A running container exits with ``code`` (the die event, as Docker sends it)."""
        if signal:
            self._emit(container, "kill", signal=signal)
        container.state, container.exit_code, container.finished_at = "exited", code, time.time()
        container.exited.set()
        self._emit(container, "die", exitCode=str(code))

    # --- images ---------------------------------------------------------------------------

    def image_present(self, image):
        return image in self._images

    def local_image_tags(self):
        return []

    def forget_image(self, image):
        self._images.discard(image)

    def pull(self, image, progress=None, auth=None, as_name=None):
        repository, tag = _split_image(image)
        if self.options["pull"]:
            time.sleep(self.options["pull"])
        if progress:
            progress({"status": f"Pulled {repository}:{tag} (simulated: no layers were downloaded)",
                      "id": tag or "latest"})
        with self._lock:
            self._images.update({image, as_name} - {None})

    # --- networks -------------------------------------------------------------------------

    def ensure_network(self, name, labels=None):
        with self._lock:
            if name not in self._networks:
                self._networks[name] = uuid.uuid4().hex + uuid.uuid4().hex[:32]
                self._addresses[name] = 2
            return self._networks[name]

    def bridge_interfaces(self):
        return []

    def forget_network(self, name):
        pass

    def _in_use(self, name):
        return self._network_users[name] > 0

    def _attach(self, container, networks):
        """Set the container's networks, keeping the count of each network's containers."""
        self._network_users.subtract(container.networks)
        container.networks = list(networks)
        self._network_users.update(container.networks)

    def remove_network(self, name):
        with self._lock:
            self._networks.pop(name, None)

    def remove_network_if_unused(self, name):
        with self._lock:
            if name in self._networks and not self._in_use(name):
                del self._networks[name]
                return True
            return False

    def remove_unused_networks(self, legacy_only=False, labels=None):
        with self._lock:
            unused = [name for name in self._networks if not self._in_use(name)]
            for name in unused:
                del self._networks[name]
            return unused

    def ensure_volume(self, name, labels):
        with self._lock:
            created = name not in self._volumes
            self._volumes.setdefault(name, {LABEL_LAB: self.lab, **labels})
            return created

    def list_volumes(self, labels=None):
        with self._lock:
            return [{"name": name, "labels": dict(found)} for name, found in self._volumes.items()
                    if all(found.get(k) == v for k, v in (labels or {}).items())]

    def remove_volumes(self, labels=None):
        with self._lock:
            gone = [v["name"] for v in self.list_volumes(labels)]
            for name in gone:
                del self._volumes[name]
            return gone

    def image_volumes(self, image):
        return set()

    def run_helper(self, spec, timeout=60):
        """A simulated helper has nothing to copy: it succeeds at once."""
        return 0, ""

    def move_to_network(self, container, network, aliases=None):
        """As DockerEngine's (a simulated network has no DNS, so the aliases change nothing)."""
        with self._lock:
            found = self._get(container)
            left = [n for n in found.networks if n != network]
            self._attach(found, [network])
            found.network = network
            return left

    def _address(self, network):
        """The next private IP of a simulated network (10.200.x.y, one /16 per engine's network)."""
        number = self._addresses.get(network, 2)
        self._addresses[network] = number + 1
        return f"10.200.{number // 250 % 250}.{number % 250 + 2}"

    # --- containers -----------------------------------------------------------------------

    def _get(self, container_id):
        found = self._containers.get(container_id)
        if found is None:
            raise ContainerNotFound(f"No such container: {container_id}")
        return found

    def list_containers(self, labels=None, all=True):
        wanted = dict(labels or {})
        with self._lock:
            rows = []
            if LABEL_TASK_ID in wanted:  # one task's: looked up, not a scan of thousands
                candidates = [self._containers[i] for i in self._by_task.get(str(wanted[LABEL_TASK_ID]), ())]
            else:
                candidates = self._containers.values()
            for c in candidates:
                if any(c.labels.get(k) != str(v) for k, v in wanted.items()) or (not all and not c.running):
                    continue
                rows.append({
                    "id": c.id, "name": c.name, "labels": dict(c.labels), "state": c.state,
                    "status": "Up (simulated)" if c.running else f"Exited ({c.exit_code}) (simulated)",
                    "health": c.health, "exit_code": None if c.running or c.state == "created" else c.exit_code,
                    "networks": sorted(c.networks),
                })
            return rows

    def create_container(self, spec):
        if self.options["eni"]:
            time.sleep(self.options["eni"])
        with self._lock:
            return self._create(spec)

    def create_containers(self, specs):
        """Create many containers at once (the agent's batched pass): their network interfaces
        are attached side by side, so the ``eni`` latency is paid once for all of them. Returns,
        for each spec, its container's id or the Conflict a container of that name raises."""
        return self._each("eni", specs, self._create, Conflict)

    def _each(self, latency, items, operation, error):
        """``operation`` on each of ``items`` under the lock, after one sleep of option ``latency``
        (operations side by side); for each, what it returned or the ``error`` it raised."""
        if self.options[latency] and items:
            time.sleep(self.options[latency])
        found = []
        with self._lock:
            for item in items:
                try:
                    found.append(operation(item))
                except error as exc:
                    found.append(exc)
        return found

    def _create(self, spec):
        labels = {k: str(v) for k, v in (spec.get("docker_labels") or {}).items()
                  if not k.lower().startswith("fargatelab.")}
        labels.update({k: str(v) for k, v in (spec.get("labels") or {}).items()})
        labels[LABEL_LAB] = self.lab
        if spec["name"] in self._names:
            raise Conflict(f'Conflict. The container name "/{spec["name"]}" is already in use')
        container = _Container(uuid.uuid4().hex + uuid.uuid4().hex, spec, labels,
                               self._address(spec.get("network") or "default"))
        self._containers[container.id] = container
        self._names[container.name] = container.id
        self._by_task.setdefault(labels.get(LABEL_TASK_ID, ""), set()).add(container.id)
        self._network_users.update(container.networks)
        self._emit(container, "create")
        return container.id

    def inspect(self, container):
        with self._lock:
            c = self._get(container)
            if c.labels.get(LABEL_LAB) != self.lab:
                raise NotOwned(f"container {container} does not carry {LABEL_LAB}={self.lab}; not touching it")
            state = {
                "Status": c.state, "Running": c.running, "ExitCode": c.exit_code, "OOMKilled": False, "Error": "",
                "StartedAt": _rfc3339(c.started_at), "FinishedAt": _rfc3339(c.finished_at),
            }
            if c.healthcheck:
                state["Health"] = {"Status": c.health or "starting"}
            return {
                "Id": c.id, "Name": "/" + c.name, "State": state,
                "Config": {"Labels": dict(c.labels), "Image": c.image, "StopSignal": "SIGTERM"},
                # Nothing listens on a simulated task's ports: they are not published.
                "NetworkSettings": {"Networks": {n: {"IPAddress": c.ip} for n in c.networks}, "Ports": {}},
            }

    def start(self, container):
        if self.options["start"]:
            time.sleep(self.options["start"])
        with self._lock:
            self._start(self._get(container))

    def start_containers(self, containers):
        """Start many containers at once (the agent's batched pass), paying the ``start``
        latency once for all of them; returns, for each, None or the ContainerNotFound it raises."""
        return self._each("start", containers, lambda container: self._start(self._get(container)), ContainerNotFound)

    def _start(self, c):
        if c.running:
            return
        c.generation += 1
        c.state, c.started_at, c.finished_at, c.exit_code = "running", time.time(), 0.0, 0
        c.exited.clear()
        self._emit(c, "start")
        if self.options["exit"] is not None:
            self._schedule(self.options["exit"], c, "exit")
        if c.healthcheck:
            c.health = "starting"
            self._schedule(min(float(c.healthcheck.get("interval", 30)), 1.0), c, "healthy")

    def signal_stop(self, container):
        self.kill(container, "SIGTERM")
        return "SIGTERM"

    def stop(self, container, timeout=30):
        self.kill(container, "SIGTERM")

    def kill(self, container, signal="SIGKILL"):
        with self._lock:
            c = self._get(container)
            if not c.running:  # Docker's 409
                raise Conflict(f"Cannot kill container: {container}: Container {container} is not running")
            if signal in ("SIGKILL", "KILL", "9"):
                self._exit(c, 137, signal="9")
            elif self.options["stop"]:
                self._emit(c, "kill", signal="15")
                self._schedule(self.options["stop"], c, "exit")
            else:  # a well-behaved task exits 0 on SIGTERM, as the demo image does
                self._exit(c, 0, signal="15")

    def remove(self, container, force=True):
        with self._lock:
            c = self._containers.get(container)
            if c is None:
                return
            if c.running:
                self._exit(c, 137, signal="9")
            del self._containers[container]
            self._names.pop(c.name, None)
            self._attach(c, [])
            siblings = self._by_task.get(c.labels.get(LABEL_TASK_ID, ""), set())
            siblings.discard(container)
            if not siblings:
                self._by_task.pop(c.labels.get(LABEL_TASK_ID, ""), None)
            self._emit(c, "destroy")

    def stats(self, container):
        """A sample in Docker's stats shape: a simulated container uses no CPU and little memory."""
        with self._lock:
            c = self._get(container)
            return {
                "read": _rfc3339(time.time()), "name": "/" + c.name, "id": c.id,
                "cpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": int(time.time() * 1e9),
                              "online_cpus": int(self.options["cpus"])},
                "precpu_stats": {}, "memory_stats": {"usage": 4 * 1048576, "stats": {}},
            }

    def logs(self, container, follow=False, tail=200, timestamps=False, since=None):
        with self._lock:
            c = self._get(container)
        lines = [f"simulated container {c.name} of image {c.image} on {self.url.split('?', 1)[0]}: nothing runs here"]
        if timestamps:
            lines = [f"{_rfc3339(c.started_at or time.time())} {line}" for line in lines]
        return _LogStream(lines, c, follow) if follow else iter(lines)
