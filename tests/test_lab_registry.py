"""The lab starts its registry (ECR) with itself: a missing registry binary is a warning, not a
crash, and the banner says where to push."""
import io
import logging

from orchestrator import registry
from orchestrator.management.commands.lab import Command
import pytest

from tests.support.common import free_port, wait_until


def test_it_runs_on_without_a_registry_binary(settings, monkeypatch, caplog, tmp_path):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_BIN": "", "REGISTRY_PORT": free_port(),
                            "REGISTRY_ROOT": str(tmp_path)}
    monkeypatch.setattr(registry.shutil, "which", lambda name: None)

    with caplog.at_level(logging.WARNING, logger="orchestrator.registry"):
        assert registry.start_lab_registry() is None
    assert "docker-registry" in caplog.text and "runs without it" in caplog.text


def test_it_starts_and_stops_the_registry_on_its_port(settings, tmp_path):
    port = free_port()
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_PORT": port, "REGISTRY_ROOT": str(tmp_path)}
    process = registry.start_lab_registry()
    try:
        assert process is not None and registry._gate_identity(port) == registry.identity(tmp_path)
    finally:
        process.stop()
    assert registry._gate_identity(port) == ""


def test_the_banner_names_the_registry(settings):
    # A lab on loopback (whatever an earlier test left HOST at): the registry is named 127.0.0.1.
    settings.LAB_HOST = "127.0.0.1"
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_PORT": 5123, "REGISTRY_LISTEN_ADDRESS": "",
                            "ADVERTISE_ADDRESS": "", "PUBLISH_ADDRESS": "", "ELB_LISTEN_ADDRESS": ""}
    out = io.StringIO()
    command = Command(stdout=out)

    command.banner("127.0.0.1", 8000)

    assert "ECR        127.0.0.1:5123  (the lab's own registry" in out.getvalue()
    assert "docker login -u AWS --password-stdin 127.0.0.1:5123" in out.getvalue()
    assert "docker push 127.0.0.1:5123/<account>/<repository>" in out.getvalue()


def test_the_banner_says_when_another_program_holds_the_registrys_port(settings, tmp_path):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGISTRY_PORT": port, "REGISTRY_ROOT": str(tmp_path)}
    out = io.StringIO()
    try:
        Command(stdout=out).banner("127.0.0.1", 8000)
    finally:
        holder.close()

    assert f"ECR        not available: port {port} on 127.0.0.1 is taken: another program holds it" in out.getvalue()
    assert "never uses a registry it did not start" in out.getvalue()


def registry_pids(port):
    """Pids of docker-registry processes serving the config for ``port``."""
    import subprocess

    found = subprocess.run(["pgrep", "-f", f"docker-registry serve .*config-{port}.yml"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.docker
def test_a_killed_lab_leaves_no_registry_behind(lab):
    import os
    import signal

    port = int(lab.env["FARGATE_LAB_REGISTRY_PORT"])
    assert registry_pids(port), "the lab started its registry"
    os.kill(lab.proc.pid, signal.SIGKILL)  # a crash: no shutdown code runs
    lab.proc.wait()
    lab.proc = None
    wait_until(lambda: not registry_pids(port), 10, message="the registry to end with the lab")
