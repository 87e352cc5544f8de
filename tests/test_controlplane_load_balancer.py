"""The control plane serves the load balancers' listeners while it holds the lease, and only then."""
import pytest

from orchestrator.controlplane import ControlPlane
from orchestrator.models import Account, Listener, LoadBalancer
from tests.support.common import answers_http, free_port, wait_until


@pytest.mark.django_db(transaction=True)
def test_only_the_leader_binds_the_listeners_and_a_successor_takes_them_over(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "DOCKER_URL": "tcp://127.0.0.1:1", "LAB_ID": "test-no-engine"}
    port = free_port()
    lb = LoadBalancer.objects.create(account=Account.default(), name="web-lb")
    Listener.objects.create(load_balancer=lb, port=port, default_actions=[
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200", "MessageBody": "hi"}}])
    first, second = ControlPlane(workers=1), ControlPlane(workers=1)
    first.start()
    second.start()
    try:
        assert first.data_plane is not None and second.data_plane is None
        assert answers_http(port)

        first.stop()
        assert not answers_http(port)
        second._renew_lease()
        assert second.data_plane is not None
        wait_until(lambda: answers_http(port), 5, message="the successor to serve the listener")
    finally:
        first.stop()
        second.stop()
    assert not answers_http(port)
