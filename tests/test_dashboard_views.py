"""Dashboard pages: each renders for a user, sends strangers to the login, and never answers 500."""
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.utils import timezone

from orchestrator.models import (
    Account, Activity, Cluster, ContainerInstance, Deployment, Service, Task, TaskContainer, TaskDefinition,
)


@pytest.fixture
def lab(db):
    """A cluster with a service of one RUNNING task on an instance, with a published port."""
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    td = TaskDefinition.objects.create(
        account=account, family="web", revision=1, cpu=256, memory=512,
        body={"family": "web", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest"}]},
    )
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    service = Service.objects.create(account=account, cluster=cluster, name="web", task_definition=td, desired_count=1, running_count=1)
    Deployment.objects.create(service=service, deployment_id=Deployment.new_id(), task_definition=td, desired_count=1)
    service.add_event("has reached a steady state.")
    now = timezone.now()
    task = Task.objects.create(
        account=account, cluster=cluster, task_definition=td, service=service, container_instance=instance,
        cpu=256, memory=512, last_status=Task.RUNNING, started_at=now, pull_started_at=now,
    )
    TaskContainer.objects.create(
        task=task, name="web", image="fargate-lab/demo:latest", last_status="RUNNING",
        network_bindings=[{"bindIP": "127.0.0.1", "containerPort": 80, "hostPort": 32777, "protocol": "tcp"}],
    )
    Activity.objects.create(component="capacity_manager", action="place", message="fleet-1 has 3840 CPU / 7680 MiB free")
    return {"account": account, "cluster": cluster, "td": td, "instance": instance, "service": service, "task": task}


def pages(lab):
    return [
        "/", "/clusters/", "/clusters/demo/", f"/services/{lab['service'].pk}/", f"/tasks/{lab['task'].task_id}/",
        "/task-definitions/", "/task-definitions/web/1/", "/instances/", "/instances/fleet-1/",
    ]


def test_it_renders_every_page_for_a_logged_in_user(alice_client, lab):
    for url in pages(lab):
        response = alice_client.get(url)
        assert response.status_code == 200, url


def test_it_sends_strangers_to_the_login(client, lab):
    for url in pages(lab):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith("/accounts/login/?next="), url


def test_it_shows_the_login_page(client, db):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_it_draws_each_component_beside_its_counterpart(alice_client, lab):
    html = alice_client.get("/").content.decode()
    for fargate, kubernetes in [
        ("Frontend service", "kube-apiserver"), ("State database", "etcd"),
        ("Cluster manager", "kube-controller-manager"), ("Capacity manager", "kube-scheduler"),
        ("Fargate agent on each instance", "kubelet on each node"), ("Docker runtime", "container runtime"),
    ]:
        assert fargate in html and kubernetes in html
    assert "fleet-1 has 3840 CPU / 7680 MiB free" in html  # the placement decision and why
    assert "CPU 256 / 4096" in html  # the instance's capacity in use
    assert 'ws-connect="/ws/map/"' in html


def test_it_shows_a_tasks_lifecycle_ports_and_pod_phase(alice_client, lab):
    html = alice_client.get(f"/tasks/{lab['task'].task_id}/").content.decode()
    for status in Task.LIFECYCLE:
        assert status in html
    assert "Pod phase" in html and "Running" in html
    assert 'href="http://127.0.0.1:32777"' in html
    assert "Kubernetes: Pod" in html
    assert f'ws-connect="/ws/tasks/{lab["task"].pk}/logs/"' in html


def test_it_shows_kubernetes_names_on_every_object_page(alice_client, lab):
    expected = {
        "/clusters/demo/": "Kubernetes: cluster / namespace",
        f"/services/{lab['service'].pk}/": "Kubernetes: Deployment",
        "/task-definitions/web/1/": "Kubernetes: Pod spec",
        "/instances/fleet-1/": "Kubernetes: Node",
    }
    for url, name in expected.items():
        assert name in alice_client.get(url).content.decode(), url


def test_it_plots_a_services_running_count(alice_client, lab):
    html = alice_client.get(f"/services/{lab['service'].pk}/").content.decode()
    assert '<polyline class="plot-running" points="' in html
    assert "has reached a steady state." in html


def test_it_answers_404_for_unknown_objects(alice_client, lab):
    for url in ["/clusters/nope/", "/services/999999/", "/tasks/nope/", "/task-definitions/web/9/", "/instances/nope/"]:
        assert alice_client.get(url).status_code == 404, url


def test_it_refuses_a_post_to_a_read_only_page(alice_client, lab):
    assert alice_client.post(f"/tasks/{lab['task'].task_id}/").status_code == 405
    assert alice_client.post("/", {"x": "1"}).status_code == 405


def test_it_serves_the_vendored_htmx(client, db):
    response = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert response.status_code == 200
    assert b"htmx" in response.content
    assert response["Content-Type"] in ("text/javascript", "application/javascript")
    assert int(response["Content-Length"]) == len(response.content)
    again = client.get("/static/vendor/htmx-2.0.11.min.js", HTTP_IF_MODIFIED_SINCE=response["Last-Modified"])
    assert again.status_code == 304
    assert client.get("/static/vendor/nope.js").status_code == 404


def test_static_files_need_no_buffering_under_asgi(db):
    """Served whole (not streamed from a file), so the ASGI handler has no synchronous iterator
    to buffer and no warning to give on every page load."""
    from channels.testing import HttpCommunicator

    from config.asgi import application

    async def fetch():
        communicator = HttpCommunicator(application, "GET", "/static/dashboard/dashboard.css")
        return await communicator.get_response(timeout=10)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = async_to_sync(fetch)()
    assert response["status"] == 200 and response["body"]
    assert not [w for w in caught if "StreamingHttpResponse" in str(w.message)]


@pytest.fixture
def bob(django_user_model, db):
    """Bob, a student acting as account 111111111111 (a member of it), with his own cluster."""
    bob = django_user_model.objects.create_user("bob", password="pw")
    account = Account.objects.create(account_id="111111111111", name="bob's")
    account.members.add(bob)
    Cluster.objects.create(account=account, name="bobs-cluster")
    TaskDefinition.objects.create(account=account, family="bobs-family", revision=1, cpu=256, memory=512,
                                  body={"family": "bobs-family", "containerDefinitions": []})
    return bob


def test_a_user_sees_and_acts_as_the_account_they_belong_to(alice_client, lab, bob):
    assert Account.of_user(bob).account_id == "111111111111"
    client = Client()
    client.force_login(bob)
    clusters = client.get("/clusters/").content.decode()
    assert "bobs-cluster" in clusters and "/clusters/demo/" not in clusters
    families = client.get("/task-definitions/").content.decode()
    assert "bobs-family" in families and "/task-definitions/web/" not in families
    # Another account's objects are not found, as with the API's keys.
    for url in ["/clusters/demo/", f"/services/{lab['service'].pk}/", f"/tasks/{lab['task'].task_id}/",
                "/task-definitions/web/1/"]:
        assert client.get(url).status_code == 404, url
    assert client.post("/clusters/", {"name": "bobs-second"}).status_code == 302
    assert Cluster.objects.get(name="bobs-second").account.account_id == "111111111111"
    # Alice belongs to no account: she acts as the default one and sees none of Bob's.
    mine = alice_client.get("/clusters/").content.decode()
    assert "/clusters/demo/" in mine and "bobs-cluster" not in mine


def test_it_leaves_out_deleted_task_definition_revisions(alice_client, lab):
    gone = TaskDefinition.objects.create(
        account=lab["account"], family="web", revision=2, cpu=256, memory=512, status=TaskDefinition.DELETE_IN_PROGRESS,
        body={"family": "web", "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest"}]},
    )
    listing = alice_client.get("/task-definitions/").content.decode()
    assert "/task-definitions/web/1/" in listing and "/task-definitions/web/2/" not in listing
    assert alice_client.get("/task-definitions/web/2/").status_code == 404
    assert "/task-definitions/web/2/" not in alice_client.get("/task-definitions/web/1/").content.decode()
    # While a live task still uses it, a DELETE_IN_PROGRESS revision stays visible, as in the API.
    lab["task"].task_definition = gone
    lab["task"].save(update_fields=["task_definition"])
    assert alice_client.get("/task-definitions/web/2/").status_code == 200
