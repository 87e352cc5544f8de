"""Isolation on the pages (issue 14, item 7): another account's object pages are the lab's own
styled "not found", and only staff get the Admin link."""
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from orchestrator import traces
from orchestrator.models import (
    Account, Cluster, Listener, LoadBalancer, Repository, Service, Task, TargetGroup, TaskDefinition,
)
from tests.support.browser import PASSWORD


def bobs_objects():
    """Bob's account with one object of every kind that has a page; the paths of those pages."""
    bob = Account.objects.create(account_id="222222222222", name="bob")
    cluster = Cluster.objects.create(account=bob, name="bobs-cluster")
    td = TaskDefinition.objects.create(account=bob, family="bobs-family", revision=1, cpu=256, memory=512, body={})
    service = Service.objects.create(account=bob, cluster=cluster, name="bobs-web", task_definition=td, desired_count=1)
    task = Task.objects.create(account=bob, cluster=cluster, task_definition=td, service=service, cpu=256, memory=512,
                               last_status=Task.RUNNING, started_at=timezone.now())
    trace_id = traces.begin("frontend", "RunTask", task.arn, account=bob)
    lb = LoadBalancer.objects.create(account=bob, name="bobs-lb")
    tg = TargetGroup.objects.create(account=bob, name="bobs-tg", port=80, target_type="ip")
    Listener.objects.create(load_balancer=lb, port=18080, default_actions=[])
    repository = Repository.objects.create(account=bob, name="bobs-repo")
    return {
        "cluster": f"/clusters/{cluster.name}/",
        "service": f"/services/{service.pk}/",
        "task": f"/tasks/{task.task_id}/",
        "task definition": f"/task-definitions/{td.family}/1/",
        "trace": f"/traces/{trace_id}/",
        "load balancer": f"/load-balancers/{lb.lb_id}/",
        "target group": f"/target-groups/{tg.tg_id}/",
        "repository": f"/repositories/{repository.name}/",
    }


@pytest.mark.django_db
def test_another_accounts_object_pages_are_the_labs_not_found_page(alice_client):
    for kind, path in bobs_objects().items():
        response = alice_client.get(path)
        html = response.content.decode()
        assert response.status_code == 404, (kind, path)
        assert "<h1>Not found</h1>" in html and "dashboard.css" in html, kind
        assert "bobs-" not in html, kind


@pytest.mark.django_db
def test_a_student_has_no_admin_link_and_staff_have_one(client, django_user_model):
    student = django_user_model.objects.create_user("student", password="pw")
    teacher = django_user_model.objects.create_user("teacher", password="pw", is_staff=True)
    client.force_login(student)
    for path in ("/", "/clusters/", "/task-definitions/", "/repositories/", "/load-balancers/"):
        assert 'href="/admin/"' not in client.get(path).content.decode(), path
    client.force_login(teacher)
    assert 'href="/admin/"' in client.get("/clusters/").content.decode()


@pytest.mark.browser
def test_in_a_browser_bobs_service_is_not_found_for_alice_and_she_has_no_admin_link(page, live_lab_server,
                                                                                      dashboard_user):
    Account.objects.create(account_id="111111111111", name="alice").members.add(dashboard_user)
    paths = bobs_objects()
    for kind in ("service", "repository", "load balancer"):
        response = page.goto(live_lab_server.url + paths[kind])
        assert response.status == 404, kind
        expect(page.locator("section.error-page h1")).to_have_text("Not found")
        expect(page.locator("header.top nav")).not_to_contain_text("Admin")
        expect(page.locator("body")).not_to_contain_text("bobs-")


@pytest.mark.django_db
def test_a_students_map_and_step_pages_name_none_of_another_accounts_objects(alice_client, alice):
    from orchestrator import activity
    from orchestrator.models import AccessKey

    Account.objects.create(account_id="111111111111", name="alice").members.add(alice)
    bobs_objects()
    bob = Account.objects.get(name="bob")
    AccessKey.objects.create(account=bob, access_key_id="AKIABOBBOBBOBBOBBOB1", secret_access_key="s")
    repository = Repository.objects.get(name="bobs-repo")
    activity.record("registry", "push", repository.arn, "push of 127.0.0.1:5055/222222222222/bobs-repo:v1")
    activity.record("load_balancer", "api.CreateLoadBalancer", "", "elbv2 CreateLoadBalancer → 200",
                    caller="AKIABOBBOBBOBBOBBOB1", status_code=200)
    for path in ("/", "/repositories/", "/load-balancers/", "/clusters/", "/task-definitions/"):
        html = alice_client.get(path).content.decode()
        assert "bobs-" not in html and "AKIABOB" not in html, path
