"""The fair share of Docker's container operations among accounts (orchestrator/docker_gate.py):
a bursting account's next create/start waits while another account's goes at once."""
import threading

import pytest

from orchestrator.docker_gate import DockerGate
from tests.support.common import wait_until


class Operation:
    """One account's Docker operation in a thread of its own: it goes when the gate lets it,
    and holds its slot until ``finish``."""

    def __init__(self, gate, account, name, log):
        self.name, self.log = name, log
        self.began = threading.Event()
        self._finish = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(gate, account), daemon=True)
        self.thread.start()

    def _run(self, gate, account):
        with gate.operation(account):
            self.log.append(self.name)
            self.began.set()
            self._finish.wait(10)

    def finish(self):
        self._finish.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def waiting(gate, account):
    return gate.state()[1].get(account, 0)


def test_an_account_alone_has_the_whole_limit_and_waits_beyond_it():
    gate, log = DockerGate(2), []
    first, second = Operation(gate, "a", "a1", log), Operation(gate, "a", "a2", log)
    wait_until(lambda: first.began.is_set() and second.began.is_set(), message="both of a's operations going")
    third = Operation(gate, "a", "a3", log)
    wait_until(lambda: waiting(gate, "a") == 1, message="a's third operation waiting")
    assert not third.began.is_set()
    first.finish()
    wait_until(third.began.is_set, message="a's third operation going once one ended")
    second.finish()
    third.finish()
    assert log == ["a1", "a2", "a3"]
    assert gate.state() == ({}, {})


def test_another_accounts_operation_goes_before_the_bursts_remainder():
    """Account a took both slots before b came; b's create goes at once, and a's next ones wait
    until a is below its share (one of two) for as long as b is starting a task."""
    gate, log = DockerGate(2), []
    a1, a2 = Operation(gate, "a", "a1", log), Operation(gate, "a", "a2", log)
    wait_until(lambda: a1.began.is_set() and a2.began.is_set(), message="a's burst holding both slots")
    a3, a4 = Operation(gate, "a", "a3", log), Operation(gate, "a", "a4", log)
    wait_until(lambda: waiting(gate, "a") == 2, message="the rest of a's burst waiting")
    with gate.presence("b"):  # b's pass starting its task
        b_create = Operation(gate, "b", "b-create", log)
        wait_until(b_create.began.is_set, message="b's create going though a holds the limit")
        a1.finish()
        assert not a3.began.is_set()  # a still holds one: its share while b starts
        b_create.finish()
        assert not a3.began.is_set()  # between b's create and its start, b is still there
        b_start = Operation(gate, "b", "b-start", log)
        wait_until(b_start.began.is_set, message="b's start going")
        a2.finish()
        wait_until(a3.began.is_set, message="a's next operation once a holds none")
        assert not a4.began.is_set()  # one at a time for a while b is starting
        b_start.finish()
    wait_until(a4.began.is_set, message="a's whole limit again once b is done")
    a3.finish()
    a4.finish()
    assert log == ["a1", "a2", "b-create", "b-start", "a3", "a4"]
    assert gate.state() == ({}, {})


def test_an_accounts_own_operations_go_in_the_order_they_asked():
    gate, log = DockerGate(1), []
    first = Operation(gate, "a", "a1", log)
    wait_until(first.began.is_set, message="a's first operation going")
    later = []
    for n in range(2, 6):
        later.append(Operation(gate, "a", f"a{n}", log))
        wait_until(lambda n=n: waiting(gate, "a") == n - 1, message=f"a{n} waiting")
    first.finish()
    for operation in later:
        wait_until(operation.began.is_set, message=f"{operation.name} going")
        operation.finish()
    assert log == ["a1", "a2", "a3", "a4", "a5"]


def test_an_operation_that_fails_gives_its_slot_back():
    gate = DockerGate(1)
    try:
        with gate.operation("a"):
            raise RuntimeError("docker said no")
    except RuntimeError:
        pass
    assert gate.state() == ({}, {})
    with gate.operation("a"):
        assert gate.state() == ({"a": 1}, {})


@pytest.mark.docker
def test_the_agent_creates_and_starts_a_tasks_containers_in_its_accounts_turn(
        settings, monkeypatch, control_plane, lab_rows, docker_engine):
    """On the real engine: while account a's operations fill its turns (a burst in progress),
    its next task waits at its create, and account b's task goes to RUNNING meanwhile; once a's
    operations end, a's task runs too."""
    from orchestrator import docker_gate
    from orchestrator.models import Account, Cluster, Task
    from tests.support.docker import LabRows

    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "TENANT_WORKERS": 2}
    monkeypatch.setattr(docker_gate, "_gates", {})
    gate = docker_gate.gate("")
    a = lab_rows.account
    log = []
    burst = [Operation(gate, a.pk, f"a{n}", log) for n in (1, 2)]
    wait_until(lambda: len(log) == 2, message="a's two operations in progress")

    bobs = LabRows(lab_rows.image)
    bobs.account = Account.objects.create(account_id="000000000002", name="bob")
    bobs.cluster = Cluster.objects.create(account=bobs.account, name=lab_rows.cluster.name)
    held = lab_rows.run_task()
    wait_until(lambda: waiting(gate, a.pk) == 1, 30, message="a's task waiting for its turn to create")
    other = bobs.run_task()
    wait_until(lambda: Task.objects.get(pk=other.pk).last_status == "RUNNING", 30, message="b's task RUNNING")
    held.refresh_from_db()
    assert held.last_status == "PENDING" and not held.containers.get().docker_id
    for operation in burst:
        operation.finish()
    wait_until(lambda: Task.objects.get(pk=held.pk).last_status == "RUNNING", 30, message="a's task RUNNING")
