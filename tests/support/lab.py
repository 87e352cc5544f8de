"""Fixtures: a whole lab as a user runs it — ``manage.py lab`` in a subprocess on a free port,
with its own state database and lab id — driven by boto3 and the aws CLI, and checked
against the real Docker engine (read here with the Docker SDK directly, not through the lab's
adapter, so the check does not trust the code under test)."""
import contextlib
import functools
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import requests
from botocore.config import Config

from tests.support.common import ROOT, build_demo_image, free_port, wait_until

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


# A lab subprocess takes longer than an in-process control plane: a longer default deadline.
poll = functools.partial(wait_until, timeout=30.0)


class LabProcess:
    """One lab subprocess: start, stop (gracefully, as Ctrl-C does), restart, clients."""

    def __init__(self, workdir, lab_id, extra_env=None, args=()):
        self.workdir = Path(workdir)
        self.args = list(args)  # more arguments of ``manage.py lab``
        self.lab_id = lab_id
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = self.workdir / "lab.log"
        self.env = {
            **os.environ,
            "FARGATE_LAB_VAR": str(self.workdir),
            "FARGATE_LAB_DB": str(self.workdir / "lab.sqlite3"),
            "FARGATE_LAB_ID": lab_id,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "FARGATE_LAB_RESYNC_SECONDS": "2",
            "FARGATE_LAB_LEASE_SECONDS": "5",
            "FARGATE_LAB_STOP_TIMEOUT": "5",
            # The lab's registry (ECR) on a port of its own, so labs never share one.
            "FARGATE_LAB_REGISTRY_PORT": str(free_port()),
            **(extra_env or {}),
        }
        if os.environ.get("DATABASE_URL") and "DATABASE_URL" not in (extra_env or {}):
            self.env["DATABASE_URL"] = lab_database(lab_id)  # on PostgreSQL: a database of its own

    def start(self):
        """Start ``manage.py lab`` and wait until the API answers."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "lab", "--skip-demo-image", *self.args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"lab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return requests.get(self.url + "/accounts/login/", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        poll(answers, timeout=60, message="the lab to answer HTTP")
        return self

    def stop(self):
        """Stop the lab as Ctrl-C does (SIGINT); running containers stay for the next start."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def manage(self, *args):
        """Run ``manage.py ARGS`` on this lab's database and settings; the CompletedProcess."""
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=60)

    def query(self, sql):
        """The rows of ``sql`` read straight from the lab's state database (SQLite or PostgreSQL)."""
        if "DATABASE_URL" in self.env:
            import psycopg

            with psycopg.connect(self.env["DATABASE_URL"]) as db:
                return db.execute(sql).fetchall()
        with sqlite3.connect(self.env["FARGATE_LAB_DB"]) as db:
            return db.execute(sql).fetchall()

    def client(self, service="ecs", **overrides):
        """A boto3 client pointed at the lab, with the default account's key."""
        kwargs = {**CREDENTIALS, **overrides}
        return boto3.client(
            service, endpoint_url=self.url, config=Config(retries={"max_attempts": 1}), **kwargs
        )


_lab_databases = []


def lab_database(lab_id):
    """A new PostgreSQL database for lab ``lab_id`` beside the run's (named after both, so that
    runs sharing the server never meet), dropped at the end of the session; its URL."""
    import psycopg

    base = urlsplit(os.environ["DATABASE_URL"])
    name = f"{base.path.lstrip('/')}_{lab_id}".replace("-", "_")[:63]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    _lab_databases.append(name)
    return urlunsplit(base._replace(path=f"/{name}"))


@pytest.fixture(scope="session", autouse=True)
def lab_databases():
    """Drop the PostgreSQL databases this session's labs made (only those)."""
    yield
    if _lab_databases:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
            for name in _lab_databases:
                db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def docker_client():
    """The Docker SDK on the local engine; fails (never skips) when no engine answers."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure to reach the engine fails the test, with the reason
        pytest.fail(f"these tests need a running Docker engine, and none answers: {exc}")
    return client


@pytest.fixture(scope="session")
def lab_demo_image(docker_client):
    """The demo image, built once per session by demo/build.sh."""
    return build_demo_image("fargate-lab/demo:latest")


@contextlib.contextmanager
def running_lab(workdir, docker_client, **env):
    """A lab of its own started with settings ``env`` (FARGATE_LAB_…=value), stopped and its
    containers removed after the block."""
    lab = LabProcess(workdir, f"test-{uuid.uuid4().hex[:8]}", extra_env={k: str(v) for k, v in env.items()})
    try:
        lab.start()  # inside: a start that times out still stops its process and removes its objects
        yield lab
    finally:
        lab.stop()
        remove_lab_objects(docker_client, lab.lab_id)


@pytest.fixture
def lab(tmp_path, docker_client, lab_demo_image):
    """A running lab of its own (own database, own lab id); its containers are removed after."""
    with running_lab(tmp_path, docker_client) as lab:
        yield lab


def lab_containers(docker_client, lab_id, all=False):
    """The containers carrying this lab's label (one removed while listed is left out)."""
    return docker_client.containers.list(all=all, filters={"label": f"fargatelab.lab={lab_id}"}, ignore_removed=True)


def remove_lab_objects(docker_client, lab_id):
    """Remove this lab's containers, networks, volumes, host firewall chain and paced log reader (and only them)."""
    from orchestrator import paced_logs
    from orchestrator.host_firewall import HostFirewall

    HostFirewall(lab_id).remove()  # a lab that did not stop cleanly leaves it behind
    for container in lab_containers(docker_client, lab_id, all=True):
        container.remove(force=True)
    for network in docker_client.networks.list(filters={"label": f"fargatelab.lab={lab_id}"}):
        network.remove()
    for volume in docker_client.volumes.list(filters={"label": f"fargatelab.lab={lab_id}"}):
        volume.remove()
    paced_logs.stop(lab_id)  # it outlives its lab by design; a test's lab is done with


@pytest.fixture
def lab_tab(browser, lab):
    """A page of the lab's dashboard, logged in with the documented default admin / admin."""
    from tests.support.browser import admin_page  # a plugin of its own: loaded after this one

    page = admin_page(browser, lab.url, {"width": 1400, "height": 1000})
    yield page
    page.context.close()
