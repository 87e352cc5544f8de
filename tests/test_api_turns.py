"""An API call's turn at the state database's write lock: a call that writes authenticates and
parses before it takes the turn (every other writer waits while it holds it), and takes it ahead
of the control plane's background writes (orchestrator/state_database: ``foreground``)."""
import pytest
from django.db import connection

from orchestrator import aws_auth
from orchestrator.elbv2 import views as elbv2_views
from orchestrator.frontend import json_service, sigv4
from orchestrator.state_database.base import WRITE_LOCK
from tests.support.api import lab_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


@pytest.fixture
def authentications(monkeypatch):
    """[(in a write transaction?, holds the write lock?)] of every authentication the API ran."""
    seen = []

    def watch(real):
        def authenticate(*args, **kwargs):
            seen.append((connection.in_atomic_block, connection.holds_write_lock))
            return real(*args, **kwargs)
        return authenticate

    monkeypatch.setattr(sigv4, "authenticate", watch(sigv4.authenticate))
    monkeypatch.setattr(elbv2_views, "authenticate", watch(aws_auth.authenticate))
    monkeypatch.setattr(json_service, "authenticate", watch(aws_auth.authenticate))
    return seen


@pytest.fixture
def turns(monkeypatch):
    """Whether each turn taken at the write lock was urgent."""
    asked = []
    acquire = WRITE_LOCK.acquire
    monkeypatch.setattr(WRITE_LOCK, "acquire",
                        lambda timeout=-1, urgent=False: asked.append(urgent) or acquire(timeout, urgent))
    return asked


def test_a_call_that_writes_authenticates_before_its_turn_and_takes_it_ahead(live_server, ecs, authentications, turns):
    ecs.create_cluster(clusterName="turns")
    lab_client(live_server, "elbv2").create_target_group(Name="turns", Protocol="HTTP", Port=80,
                                                         VpcId="vpc-00000000", TargetType="ip")
    lab_client(live_server, "logs").create_log_group(logGroupName="turns")
    assert authentications == [(False, False)] * 3  # ECS, ELBv2 and a JSON service (CloudWatch Logs)
    assert turns and all(turns)  # every turn of the three calls, their activity rows' included


def test_a_call_refused_for_its_signature_takes_no_turn_for_its_call(live_server, default_account, authentications, turns):
    wrong = lab_client(live_server, "ecs", secret="wrong")
    with pytest.raises(wrong.exceptions.ClientError, match="InvalidSignatureException"):
        wrong.create_cluster(clusterName="nope")
    assert authentications == [(False, False)]
    assert len(turns) <= 1 and all(turns)  # its activity row's, if any
    assert not WRITE_LOCK.locked()
