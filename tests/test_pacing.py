"""AWS's pace for task launches (FARGATE_LAB_AWS_PACING): a token bucket per account, RunTask
beyond it refused with ThrottlingException, a service's scheduler starting what it allows."""
import boto3
import botocore.config
import botocore.exceptions
import pytest

from orchestrator import pacing
from orchestrator.models import Service, Task
from tests.support.api import default_account, fargate_task_definition  # noqa: F401  (fixtures)


@pytest.fixture
def paced(settings):
    def pace(rate, burst):
        settings.FARGATE_LAB = {**settings.FARGATE_LAB, "AWS_PACING": 1, "TASK_LAUNCH_RATE": rate,
                                "TASK_LAUNCH_BURST": burst}
        pacing.reset()
    yield pace
    pacing.reset()


@pytest.fixture
def clock(monkeypatch):
    """pacing's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: now[0])
    return now


def test_the_bucket_holds_a_burst_and_refills_at_the_rate(paced, clock):
    paced(rate=20, burst=100)
    assert pacing.take(1, 100) == (100, 0.0)
    assert pacing.take(1, 1) == (0, pytest.approx(0.05))  # all or none: one more in 1/20 s
    assert pacing.take(2, 100)[0] == 100  # each account has its own bucket
    clock[0] += 0.5  # ten launches' worth
    assert pacing.take(1, 11) == (0, pytest.approx(0.0))
    assert pacing.take(1, 30, partial=True) == (10, pytest.approx(0.05))
    clock[0] += 60
    assert pacing.take(1, 101)[0] == 0  # never more than the burst at once
    assert pacing.take(1, 100)[0] == 100


def test_without_pacing_every_launch_is_granted(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "AWS_PACING": 0}
    assert pacing.take(1, 10_000) == (10_000, 0.0)


def test_run_task_beyond_the_bucket_is_throttled_and_writes_nothing(live_server, default_account, paced):  # noqa: F811
    paced(rate=0.01, burst=5)
    ecs = boto3.client("ecs", endpoint_url=live_server.url, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test",
                       config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}))
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    network = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}
    assert len(ecs.run_task(cluster="demo", taskDefinition="web", count=5, launchType="FARGATE",
                            networkConfiguration=network)["tasks"]) == 5
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ecs.run_task(cluster="demo", taskDefinition="web", count=1, launchType="FARGATE", networkConfiguration=network)
    assert caught.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert Task.objects.count() == 5


@pytest.mark.docker
def test_a_service_starts_its_tasks_at_the_accounts_pace(control_plane, lab_rows, paced, wait_until):
    paced(rate=4, burst=2)
    service = lab_rows.create_service(8)
    wait_until(lambda: Service.objects.get(pk=service.pk).tasks.count() == 8, 60, message="8 tasks started")
    created = sorted(service.tasks.values_list("created_at", flat=True))
    # The bucket never gives more than the burst plus what it refilled since the first launch.
    for n, at in enumerate(created, start=1):
        assert (at - created[0]).total_seconds() >= (n - 2) / 4 - 0.05, f"task {n} started too early"
