"""Set-up the control-plane benchmarks share: a throwaway state database and a unique lab id
(made before ``django.setup()``), waiting for a condition with a deadline, the demo image, and
removing every container, network and file the run made."""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_lab(**env):
    """Point the lab at a temporary directory, database and lab id (plus ``env``), then set up
    Django; returns (work directory, lab id)."""
    workdir = tempfile.mkdtemp(prefix="fargatelab-bench-")
    lab = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "FARGATE_LAB_VAR": workdir,
        "FARGATE_LAB_DB": f"{workdir}/bench.sqlite3", "FARGATE_LAB_ID": lab, "FARGATE_LAB_LOG": "WARNING", **env,
    })
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return workdir, lab


_changed = threading.Event()
_waiting_for = {"kinds": None}
_subscribed = []


def _on_change(kind, pk, **info):
    kinds = _waiting_for["kinds"]
    if kinds is None or kind in kinds:
        _changed.set()


def wait_for(predicate, timeout, interval=0.25, kinds=None):
    """Wait until ``predicate`` is true; raise if ``timeout`` seconds pass.

    The predicate is checked again after every change the control plane publishes on the bus
    (of ``kinds``, e.g. ("task",), or of any kind; every status change of a task or service is
    published once committed), and every ``interval`` seconds besides. Polling the database
    every few milliseconds instead would take the interpreter from the control plane being
    measured (a quarter of its time in a rolling update of 20 tasks), a cost the raw
    ``docker run`` baselines do not pay.
    """
    if not _subscribed:
        from orchestrator import bus

        _subscribed.append(bus.subscribe(_on_change))
    _waiting_for["kinds"] = kinds
    deadline = time.monotonic() + timeout
    while True:
        _changed.clear()
        if predicate():
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("benchmark condition not reached")
        _changed.wait(min(interval, left))



def demo_image():
    """Build the demo image (offline) with demo/build.sh; returns its name."""
    return subprocess.run([str(ROOT / "demo" / "build.sh")], check=True, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]


def remove_lab(lab, workdir):
    """Remove the lab's containers and networks (and only them), and the work directory."""
    from orchestrator.docker_engine import DockerEngine

    engine = DockerEngine(lab=lab)
    for container in engine.list_containers():
        engine.remove(container["id"])
    engine.remove_unused_networks()
    shutil.rmtree(workdir, ignore_errors=True)
