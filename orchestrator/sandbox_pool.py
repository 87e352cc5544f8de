"""The warm pool of task sandboxes: pause containers made ahead, whose network a task joins.

On Fargate the warm pool is why tasks start quickly ("the fleet acts as hot standby"). In
Kubernetes each Pod's network namespace belongs to a pause container (the Pod sandbox of the
CRI), which the Pod's containers join; the ECS agent makes one for every awsvpc task too. Here,
for each Docker engine and cluster network the agent starts tasks on, the pool keeps
``FARGATE_LAB_SANDBOX_POOL`` pause containers running on that network, with the lab's labels and
small CPU, memory, pids and log limits. A task claims one (``claim``: written on the task as
``Task.sandbox_id``, unique, before any container joins it, so two tasks never share one), and
its containers are created with ``network_mode: container:<pause>``: they skip Docker's network
endpoint and port setup, the slowest part of a start (0.37 s against 0.11 s, measured), and get
the sandbox's IP. Their ports are published by the lab's forwarder (``port_forwarder``), since
Docker cannot publish a port on a joined container. A thread refills the pool in the background,
once no claim came for ``REFILL_DELAY`` (so that refills do not slow the burst they refill for).

The sandbox goes with its task: removed when the task is STOPPED. ``reconcile`` (each resync,
and at the control plane's start) looks at every sandbox of the lab on an engine: one claimed by
a live task stays; one of a STOPPED or forgotten task, one not running (a Docker restart stops
them all), or one whose cluster is gone is removed; a running one nobody ever claimed (a
restarted lab's pool) is adopted, up to the pool's size. Not pooled, and started as before: tasks
on a remote or simulated engine (the forwarder must reach the sandbox's IP), tasks with UDP port
mappings, Cloud Map aliases or systemControls (a joined container can set none of them), and
tasks whose containers share a container port (in one network namespace they would collide).
"""
import collections
import io
import json
import logging
import os
import shutil
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, close_old_connections

from orchestrator import activity, port_forwarder, service_discovery
from orchestrator.docker_engine import (
    LABEL_ACCOUNT, LABEL_CLUSTER, ContainerNotFound, EngineError, ImageNotFound,
)

log = logging.getLogger(__name__)

# A sandbox carries these besides the lab's own and its cluster network's labels.
LABEL_SANDBOX = "fargatelab.sandbox"  # "pause"
LABEL_NETWORK = "fargatelab.network"  # the cluster network it sits on
PAUSE_IMAGE = "fargate-lab/pause:1"
# The pause process: does nothing, ends at once on SIGTERM.
PAUSE_COMMAND = ["/bin/busybox", "sh", "-c",
                 "trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 86400 & wait $!; done"]
# A sandbox's own limits: it only holds a network namespace.
PAUSE_NANO_CPUS = 50_000_000  # 0.05 CPU
PAUSE_MEMORY = 16 * 1024 * 1024
PAUSE_PIDS = 8
# Seconds without a claim before the pool refills (a burst of starts is not slowed by its refill).
REFILL_DELAY = 0.5


def size():
    """Sandboxes kept ready per engine and cluster network (0: no pool)."""
    return max(int(settings.FARGATE_LAB.get("SANDBOX_POOL") or 0), 0)


@dataclass
class Sandbox:
    id: str
    name: str
    ip: str
    network: str
    made_at: float = 0.0  # time.monotonic() when this process made or adopted it


def is_sandbox(container):
    """Whether a listed container (``DockerEngine.list_containers``' row) is a pool's sandbox."""
    return LABEL_SANDBOX in (container.get("labels") or {})


def eligible(task, engine, definitions):
    """Whether the task can start in a sandbox of the pool (see the module's last paragraph)."""
    if not size() or not engine.is_local or task.container_instance_id is None:
        return False
    ports = []
    for definition in definitions:
        if definition.get("systemControls"):
            return False
        for mapping in definition.get("portMappings") or []:
            if (mapping.get("protocol") or "tcp").lower() != "tcp":
                return False
            if mapping.get("containerPort"):
                ports.append(int(mapping["containerPort"]))
        if service_discovery.aliases_for(task, definition.get("name", "")):
            return False
    return len(ports) == len(set(ports))


# --- the pause image ----------------------------------------------------------------------------

def _static_busybox():
    """The path of a statically linked busybox on this host (Debian's busybox-static), or None."""
    for path in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if path and os.path.isfile(path):
            with open(path, "rb") as binary:
                head = binary.read(8192)
            if head[:4] == b"\x7fELF" and b"ld-linux" not in head and b"ld-musl" not in head:
                return path
    return None


def pause_rootfs():
    """The pause image's root file system as a tar archive's bytes: a static busybox alone."""
    busybox = _static_busybox()
    if busybox is None:
        raise ImageNotFound(f"{PAUSE_IMAGE} is missing and no static busybox (busybox-static) is here to build it")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for folder in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        archive.add(busybox, arcname="bin/busybox")
    return data.getvalue()


def ensure_image(engine):
    """Build the pause image on the engine if it lacks it (offline: ``docker import``)."""
    if engine.image_present(PAUSE_IMAGE):
        return
    engine.import_image(pause_rootfs(), PAUSE_IMAGE, changes=[f"CMD {json.dumps(PAUSE_COMMAND)}"])
    activity.record("agent", "pause-image", message=f"built {PAUSE_IMAGE} (a static busybox) on {engine.describe()}")


# --- the pool -----------------------------------------------------------------------------------

class SandboxPool:
    """The free sandboxes of every engine and network, and the thread that refills them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._free = collections.defaultdict(collections.deque)  # (engine url, lab, network) -> Sandbox
        self._wanted = {}  # (engine url, lab, network) -> (engine, the network's labels): pools to keep full
        self._making = collections.Counter()  # (engine url, lab, network) -> sandboxes being made
        self._last_claim = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._addresses = {}  # sandbox id -> IP, of those this process made or looked at

    # -- what the agent calls
    def claim(self, engine, network, network_labels, task):
        """A ready sandbox on ``network`` for ``task`` (written on it), or None (the task starts
        without one); either way the pool is marked to be kept full and refills soon."""
        key = (engine.url, engine.lab, network)
        with self._lock:
            self._wanted[key] = (engine, dict(network_labels))
            self._last_claim = time.monotonic()
            while self._free[key]:
                sandbox = self._free[key].popleft()
                if self._write_claim(task, sandbox):
                    break
            else:
                sandbox = None
        self._ensure_thread()
        self._wake.set()
        return sandbox

    @staticmethod
    def _write_claim(task, sandbox):
        """Name the sandbox on the task; False if another task has it (another process's pool)."""
        from orchestrator.models import Task
        try:
            changed = Task.objects.filter(pk=task.pk, sandbox_id="").update(sandbox_id=sandbox.id)
        except IntegrityError:
            return False
        if changed:
            task.sandbox_id = sandbox.id
        return bool(changed)

    def claim_holds(self, engine, task, sandbox):
        """True if the claimed sandbox runs; else (stopped since it was made: a Docker restart
        before the next reconcile) take the claim back, remove it, and return False."""
        try:
            if (engine.inspect(sandbox.id).get("State") or {}).get("Running"):
                return True
        except ContainerNotFound:
            pass
        from orchestrator.models import Task
        Task.objects.filter(pk=task.pk, sandbox_id=sandbox.id).update(sandbox_id="")
        task.sandbox_id = ""
        try:
            engine.remove(sandbox.id)
        except ContainerNotFound:
            pass
        return False

    def address(self, engine, sandbox_id):
        """The sandbox's IP on its network ("" if it is gone or has none)."""
        with self._lock:
            if sandbox_id in self._addresses:
                return self._addresses[sandbox_id]
        try:
            data = engine.inspect(sandbox_id)
        except (ContainerNotFound, EngineError):
            return ""
        networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), "")
        with self._lock:
            self._addresses[sandbox_id] = ip
        return ip

    def release(self, engine, task):
        """The task is STOPPED: close its forwarded ports and remove its sandbox."""
        port_forwarder.forwarder().close_prefix(f"{task.arn}|")
        if not task.sandbox_id:
            return
        with self._lock:
            self._addresses.pop(task.sandbox_id, None)
        try:
            engine.remove(task.sandbox_id)
        except ContainerNotFound:
            pass

    def free(self, engine, network):
        """The ids of the free sandboxes of one pool (for the pages and the tests)."""
        with self._lock:
            return [s.id for s in self._free.get((engine.url, engine.lab, network), ())]

    # -- making sandboxes
    def make(self, engine, network, network_labels):
        """Create and start one sandbox on ``network``; returns it."""
        ensure_image(engine)
        engine.ensure_network(network, labels=network_labels)
        name = f"fargatelab-{engine.lab}-sandbox-{uuid.uuid4().hex[:12]}"
        spec = {
            "name": name, "image": PAUSE_IMAGE,
            "labels": {LABEL_SANDBOX: "pause", LABEL_NETWORK: network, **network_labels},
            "nano_cpus": PAUSE_NANO_CPUS, "memory": PAUSE_MEMORY, "pids_limit": PAUSE_PIDS,
            "log_max_size": "1m", "log_max_file": 1, "network": network, "stop_timeout": 1,
        }
        sandbox_id = engine.create_container(spec)
        try:
            engine.start(sandbox_id)
        except EngineError:
            engine.remove(sandbox_id)
            raise
        sandbox = Sandbox(sandbox_id, name, "", network, time.monotonic())
        sandbox.ip = self.address(engine, sandbox_id)
        return sandbox

    def fill(self, key):
        """Make one sandbox for pool ``key`` if it is short of one; True if one was made."""
        with self._lock:
            wanted = self._wanted.get(key)
            if wanted is None or len(self._free[key]) + self._making[key] >= size():
                return False
            self._making[key] += 1
        try:
            sandbox = self.make(wanted[0], key[2], wanted[1])
        finally:
            with self._lock:
                self._making[key] -= 1
        with self._lock:
            self._free[key].append(sandbox)
        return True

    def _ensure_thread(self):
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._refill_forever, name="sandbox-pool", daemon=True)
            self._thread.start()

    def _refill_forever(self):
        """Keep every wanted pool full, one sandbox at a time, once claims have paused."""
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=max(backoff, 1.0))
            self._wake.clear()
            while not self._stop.is_set():
                quiet = time.monotonic() - self._last_claim
                if quiet < REFILL_DELAY:
                    self._stop.wait(REFILL_DELAY - quiet)
                    continue
                with self._lock:
                    keys = list(self._wanted)
                try:
                    made = any([self.fill(key) for key in keys])
                    backoff = 0.0
                except EngineError as exc:  # the engine is down or the network went: try again later
                    log.info("the sandbox pool could not refill: %s", exc)
                    backoff = min(max(backoff * 2, 1.0), 10.0)
                    break
                except Exception:  # a bug here must not end the refills
                    log.exception("sandbox pool refill failed")
                    backoff = 10.0
                    break
                finally:
                    close_old_connections()
                if not made:
                    break

    def stop(self):
        """End the refill thread (the sandboxes stay: a restarted lab adopts them)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    # -- reconciling with Docker
    def reconcile(self, engine):
        """Adopt, keep or remove every sandbox of the lab on ``engine`` (see the module's text);
        close the forwarded ports of tasks that are no longer live. Returns what was removed."""
        from orchestrator.models import Cluster, Task
        listed_at = time.monotonic()
        rows = engine.list_containers(labels={LABEL_SANDBOX: "pause"})
        ids = [row["id"] for row in rows]
        live_clusters = set(Cluster.objects.filter(status=Cluster.ACTIVE).values_list("account__account_id", "name"))
        remove = []
        with self._lock:  # claims are written under it: none is half-made while this looks
            claimed = dict(Task.objects.filter(sandbox_id__in=ids).values_list("sandbox_id", "last_status"))
            free_ids = {s.id for pool in self._free.values() for s in pool}
            for row in rows:
                labels = row["labels"]
                key = (engine.url, engine.lab, labels.get(LABEL_NETWORK, ""))
                cluster_live = (labels.get(LABEL_ACCOUNT), labels.get(LABEL_CLUSTER)) in live_clusters
                if row["id"] in claimed:
                    if claimed[row["id"]] == Task.STOPPED:
                        remove.append(row)
                elif row["id"] not in free_ids and self._making[key]:
                    continue  # maybe the one being made (not running yet): the next look decides
                elif row["state"] != "running" or not cluster_live:
                    remove.append(row)
                elif row["id"] not in free_ids:
                    if len(self._free[key]) + self._making[key] < size():
                        self._free[key].append(Sandbox(row["id"], row["name"], "", key[2], listed_at))
                        self._wanted.setdefault(key, (engine, {LABEL_CLUSTER: labels.get(LABEL_CLUSTER, ""),
                                                               LABEL_ACCOUNT: labels.get(LABEL_ACCOUNT, "")}))
                    else:
                        remove.append(row)
            gone = {row["id"] for row in remove}
            for key, pool in self._free.items():
                if key[:2] == (engine.url, engine.lab):
                    # One missing from the list was removed by hand, unless it is newer than the list.
                    kept = [s for s in pool if s.id not in gone and (s.id in ids or s.made_at >= listed_at)]
                    pool.clear()
                    pool.extend(kept)
            for key, (_, labels) in list(self._wanted.items()):  # a gone cluster's pool is not refilled
                if key[:2] == (engine.url, engine.lab) and (labels.get(LABEL_ACCOUNT), labels.get(LABEL_CLUSTER)) not in live_clusters:
                    self._wanted.pop(key, None)
        for row in remove:
            try:
                engine.remove(row["id"])
            except ContainerNotFound:
                pass
        gone_clusters = {row["labels"].get(LABEL_NETWORK, "") for row in remove if (
            row["labels"].get(LABEL_ACCOUNT), row["labels"].get(LABEL_CLUSTER)) not in live_clusters}
        for network in gone_clusters - {""}:  # kept for its sandboxes only: it goes with its cluster
            engine.remove_network_if_unused(network)
        if remove:
            activity.record("agent", "sandbox-removed", message=(
                f"removed {len(remove)} Pod sandbox(es) on {engine.describe()}: their task stopped, "
                "their cluster is gone, or they no longer run"))
        self._close_stale_forwarders()
        for key in list(self._wanted):
            if key[:2] == (engine.url, engine.lab):
                self._wake.set()
                self._ensure_thread()
                break
        return remove

    @staticmethod
    def _close_stale_forwarders():
        """Close the forwarded ports of tasks that are STOPPED or gone."""
        from orchestrator.models import Task
        forwarder = port_forwarder.forwarder()
        arns = {key.split("|", 1)[0] for key in forwarder.keys()}
        if not arns:
            return
        ids = {arn.rsplit("/", 1)[-1]: arn for arn in arns}
        live = set(Task.objects.filter(task_id__in=ids).exclude(last_status=Task.STOPPED).values_list("task_id", flat=True))
        for task_id, arn in ids.items():
            if task_id not in live:
                forwarder.close_prefix(f"{arn}|")

    def remove_all(self, engine):
        """Remove every free sandbox of ``engine`` from the pool and Docker (a test's tidy-up)."""
        with self._lock:
            sandboxes = [s for key, pool in self._free.items() if key[:2] == (engine.url, engine.lab) for s in pool]
            for key in [k for k in self._free if k[:2] == (engine.url, engine.lab)]:
                self._free[key].clear()
                self._wanted.pop(key, None)
        for sandbox in sandboxes:
            try:
                engine.remove(sandbox.id)
            except ContainerNotFound:
                pass
        return len(sandboxes)


_pool = SandboxPool()  # its refill thread starts with the first claim
_pool_lock = threading.Lock()


def pool():
    """The process's one sandbox pool."""
    return _pool


def reset():
    """Forget the pool (tests): its thread ends; Docker's sandboxes stay for ``reconcile``."""
    global _pool
    with _pool_lock:
        old, _pool = _pool, SandboxPool()
    old.stop()
