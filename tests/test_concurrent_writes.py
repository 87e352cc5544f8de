"""Writes that race, on either state database: one account's concurrent API writes take turns,
so a quota checked in a request's transaction still holds when it commits (PostgreSQL's READ
COMMITTED would let two requests count the same usage; SQLite's IMMEDIATE transactions take
turns by themselves), and the leader lease has one holder however many claim it at once."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from orchestrator.controlplane import LEASE_NAME, ControlPlane
from orchestrator.frontend import EcsError
from orchestrator.frontend.operations import dispatch
from orchestrator.models import Account, Cluster, Lease

pytestmark = pytest.mark.django_db(transaction=True)


def at_once(count, work):
    """Run ``work(n)`` in ``count`` threads released together; their results (or errors)."""
    barrier = threading.Barrier(count)

    def run(n):
        barrier.wait()
        try:
            return work(n)
        except Exception as exc:  # the refusals are what the test counts
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_create_clusters_stop_at_the_quota():
    account = Account.objects.create(account_id="000000000002", name="bob", clusters_quota=2)
    results = at_once(8, lambda n: dispatch(account, "CreateCluster", {"clusterName": f"c{n}"}))
    refused = [r for r in results if isinstance(r, EcsError)]
    assert all("limit on the number of clusters" in str(r.message) for r in refused), refused
    assert Cluster.objects.filter(account=account, status=Cluster.ACTIVE).count() == 2
    assert len(refused) == 6


def test_one_control_plane_holds_the_lease_when_several_claim_it_at_once(settings):
    planes = [ControlPlane(workers=1, identity=f"plane-{n}") for n in range(6)]

    def claim(n):
        planes[n]._renew_lease()
        return planes[n].is_leader

    try:
        assert sum(at_once(len(planes), claim)) == 1
    finally:
        for plane in planes:
            plane._stop_data_plane()  # the leader's load balancers (none here)
    (holder,) = [plane.identity for plane in planes if plane.is_leader]
    assert Lease.objects.get(name=LEASE_NAME).holder == holder
    try:
        assert sum(at_once(len(planes), claim)) == 1  # renewing: the holder keeps it, no one else gets it
    finally:
        for plane in planes:
            plane._stop_data_plane()
    assert [plane.identity for plane in planes if plane.is_leader] == [holder]
