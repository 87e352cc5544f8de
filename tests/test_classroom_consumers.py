"""The classroom's live pages over WebSockets: the class page for staff only, a lab page for
its own account, ticks pushed as HTML fragments."""
import pytest
from django.test import Client

from classroom import progress
from classroom.runner import evaluate
from orchestrator.frontend import call
from orchestrator.models import Account
from tests.test_consumers import connect, receive_until, run

pytestmark = pytest.mark.django_db(transaction=True)


def session_of(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_the_class_socket_refuses_students(students):
    session = session_of(students[0])

    async def scenario():
        communicator, connected, code = await connect("/ws/class/", session)
        await communicator.disconnect()
        return connected, code

    assert run(scenario()) == (False, 4404)


def test_a_lab_socket_refuses_another_accounts_run(students):
    bobs = progress.start(students[1], "image-to-url")
    session = session_of(students[0])

    async def scenario():
        communicator, connected, code = await connect(f"/ws/lab/{bobs.pk}/", session)
        await communicator.disconnect()
        return connected, code

    assert run(scenario()) == (False, 4404)


def test_the_class_socket_pushes_a_tick_to_staff(students, teacher):
    amys = progress.start(students[0], "image-to-url")
    session = session_of(teacher)

    async def scenario():
        from asgiref.sync import sync_to_async

        communicator, connected, _ = await connect("/ws/class/", session)
        assert connected
        await receive_until(communicator, 'data-student="amy"')

        def tick():
            call(Account.of_user(students[0]), "CreateCluster", {"clusterName": "demo"})
            evaluate(amys)  # the runner's step, in this thread

        await sync_to_async(tick)()
        html = await receive_until(communicator, 'data-step="cluster" data-ticked="true"')
        await communicator.disconnect()
        return html

    html = run(scenario())
    assert 'hx-swap-oob="true"' in html and 'data-student="amy" data-done="1"' in html
