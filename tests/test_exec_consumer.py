"""The terminal's WebSocket on plain data: who may open it, and what a task without exec says."""
import json

import pytest
from django.test import Client

from dashboard import exec_consumer
from dashboard.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from orchestrator.models import Account, Cluster, Task, TaskDefinition
from tests.test_consumers import connect, run

pytestmark = pytest.mark.django_db(transaction=True)


def session_of(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def task():
    """A RUNNING task of the default account, started without enableExecuteCommand."""
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512, body={})
    return Task.objects.create(account=account, cluster=cluster, task_definition=td, cpu=256, memory=512,
                               last_status=Task.RUNNING)


def test_it_refuses_an_unauthenticated_terminal(task):
    async def scenario():
        communicator, connected, code = await connect(f"/ws/tasks/{task.pk}/exec/")
        assert not connected and code == CLOSE_UNAUTHENTICATED
        await communicator.disconnect()

    run(scenario())


def test_it_refuses_another_accounts_terminal(task, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="x")
    Account.objects.create(account_id="111111111111", name="bob").members.add(bob)
    cookie = session_of(bob)

    async def scenario():
        communicator, connected, code = await connect(f"/ws/tasks/{task.pk}/exec/", cookie)
        assert not connected and code == CLOSE_NOT_FOUND
        await communicator.disconnect()

    run(scenario())


def test_staff_of_another_account_may_open_it_and_a_task_without_exec_is_refused(task, django_user_model):
    staff = django_user_model.objects.create_user("teacher", password="x", is_staff=True)
    Account.objects.create(account_id="222222222222", name="teacher").members.add(staff)
    cookie = session_of(staff)

    async def scenario():
        communicator, connected, _ = await connect(f"/ws/tasks/{task.pk}/exec/", cookie)
        assert connected
        message = json.loads(await communicator.receive_from(timeout=5))
        assert message["type"] == "refused" and "enableExecuteCommand" in message["message"]
        await communicator.disconnect()

    run(scenario())


def test_terminal_sizes_are_clamped():
    assert exec_consumer._size({"rows": 10_000}, "rows", 24) == exec_consumer.MAX_SIZE
    assert exec_consumer._size({"rows": True}, "rows", 24) == 24
    assert exec_consumer._size({}, "cols", 100) == 100
