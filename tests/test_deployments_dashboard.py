"""The dashboard's rollout view (deployments side by side with their tasks) and the fleet's
history on the instances page, rendered from the state database."""
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import fragments
from orchestrator import activity
from orchestrator.models import Account, Cluster, ContainerInstance, Deployment, Service, Task, TaskDefinition


@pytest.fixture
def rollout(db, settings):
    """A service halfway from revision 1 to 2: two old tasks RUNNING, one new RUNNING, one new PENDING."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "HEALTH_GRACE_SECONDS": 40}
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="demo")
    rev1, rev2 = (TaskDefinition.objects.create(account=account, family="web", revision=n, cpu=256, memory=512,
                                                body={"containerDefinitions": [{"name": "web", "image": "x"}]})
                  for n in (1, 2))
    service = Service.objects.create(
        account=account, cluster=cluster, name="web", task_definition=rev2, desired_count=3,
        deployment_configuration={"minimumHealthyPercent": 50, "maximumPercent": 150,
                                  "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    old = Deployment.objects.create(service=service, deployment_id="ecs-svc/1", status="ACTIVE",
                                    task_definition=rev1, rollout_state="COMPLETED")
    new = Deployment.objects.create(service=service, deployment_id="ecs-svc/2", task_definition=rev2)
    now = timezone.now()

    def task(deployment, td, status, started=None):
        return Task.objects.create(account=account, cluster=cluster, task_definition=td, service=service,
                                   deployment=deployment, cpu=256, memory=512, last_status=status, started_at=started)

    task(old, rev1, "RUNNING", now - timedelta(minutes=5))
    task(old, rev1, "RUNNING", now - timedelta(minutes=5))
    task(new, rev2, "RUNNING", now - timedelta(seconds=3))
    task(new, rev2, "PENDING")
    return service


def test_it_shows_old_and_new_deployments_side_by_side_with_their_tasks(alice_client, rollout):
    page = alice_client.get(f"/services/{rollout.pk}/").content.decode()
    assert 'id="service-rollout-%d"' % rollout.pk in page
    new_column = page.index('data-deployment="ecs-svc/2"')
    old_column = page.index('data-deployment="ecs-svc/1"')
    assert new_column < old_column  # newest first, like DescribeServices
    assert "at least <strong>2</strong> healthy tasks" in page and "at most <strong>4</strong> tasks" in page
    assert "3 failed tasks fail a deployment" in page
    new_html = page[new_column:old_column]
    assert "web:2 · 2 task(s), 0 healthy" in new_html and "settling" in new_html and "PENDING" in new_html
    assert "web:1 · 2 task(s), 2 healthy" in page[old_column:]


def test_the_rollout_fragment_is_pushed_with_the_same_template(rollout):
    html = fragments.render("service-rollout", rollout.pk, oob=True)
    assert 'hx-swap-oob="true"' in html and "ecs-svc/2" in html
    assert fragments.render("service-rollout", 999999) is None


def test_the_instances_page_shows_the_fleet_growing_and_shrinking(alice_client, db):
    ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    ContainerInstance.objects.create(name="fleet-2", cpu_registered=4096, memory_registered=8192,
                                     status="INACTIVE")
    activity.record("capacity_manager", "launch-instance", message="launching fleet-2 on x: 3 waiting task(s) "
                                                                   "fit on no instance")
    activity.record("capacity_manager", "recycle-instance", message="fleet-2 drained and left the fleet")
    page = alice_client.get("/instances/").content.decode()
    assert 'id="fleet-history"' in page
    assert "launching fleet-2 on x: 3 waiting task(s) fit on no instance" in page
    assert page.index("fleet-2 drained and left the fleet") < page.index("launching fleet-2")  # newest first
    assert "1 instance(s)" in page
    context = fragments._registry["fleet-history"].context(None)
    heights = [float(point.split(",")[1]) for point in context["points"].split()]
    # one instance, up to two with the launch, back to one with the recycle
    assert heights[0] == heights[-1] and min(heights) < heights[0] and len(set(heights)) == 2
