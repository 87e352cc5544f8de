"""What an API call sends the state database: on PostgreSQL every statement is a round trip to
another process, so a read call's reads go in autocommit and its two trace rows in one
transaction that does not wait for the disk; nothing serialises the writers of one process
there (orchestrator/state_database, bench/bench_postgres.py). On SQLite the turns stay."""
import threading

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orchestrator import state_database, traces
from orchestrator.models import Account, Activity, Trace
from tests.support.api import signed_request

pytestmark = pytest.mark.django_db(transaction=True)
POSTGRES = pytest.mark.postgres
WEB = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{"name": "web", "image": "fargate-lab/demo:latest", "essential": True}],
}


def statements(operation, body):
    """The SQL one signed ECS call sends (through the API's view, as over HTTP) and its answer."""
    headers, data = signed_request("http://testserver", operation, body)
    headers = {name: value for name, value in headers.items() if name.lower() not in ("content-type", "content-length")}
    with CaptureQueriesContext(connection) as captured:
        response = Client().post("/", data=data, content_type="application/x-amz-json-1.1",
                                 headers={**headers, "Host": "testserver"})
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries]


def touching(sql, table):
    return [statement for statement in sql if f'"{table}"' in statement]


def test_a_read_call_writes_its_trace_and_activity_row_in_one_insert_each_with_no_savepoint():
    Account.default()
    sql = statements("ListClusters", {})
    trace_rows = touching(sql, "orchestrator_trace")
    assert len(trace_rows) == 1 and trace_rows[0].startswith("INSERT")  # no look first (get_or_create)
    assert [s for s in touching(sql, "orchestrator_activity") if s.startswith("INSERT")] == [
        s for s in touching(sql, "orchestrator_activity")]
    assert len(touching(sql, "orchestrator_activity")) == 1
    # No savepoint of its own around the trace row: SQLite's group commit keeps its one per
    # writer, PostgreSQL has none.
    assert len([s for s in sql if s.startswith("SAVEPOINT")]) == (1 if connection.vendor == "sqlite" else 0)
    assert Trace.objects.filter(action="ListClusters").count() == 1
    assert Activity.objects.filter(action="ListClusters", status_code=200).count() == 1


@POSTGRES
def test_on_postgresql_a_read_reads_in_autocommit_and_commits_its_trace_rows_without_waiting_for_the_disk():
    Account.default()
    sql = statements("ListClusters", {})
    begin = sql.index("BEGIN")
    assert sql.count("BEGIN") == 1 and sql[-1] == "COMMIT"
    # The key and the clusters read before the one transaction, which holds the two trace rows only.
    assert touching(sql[:begin], "orchestrator_accesskey") and touching(sql[:begin], "orchestrator_cluster")
    assert sql[begin + 1] == "SET LOCAL synchronous_commit TO OFF"
    assert [s.split(" (")[0] for s in sql[begin + 2:-1]] == [
        'INSERT INTO "orchestrator_trace"', 'INSERT INTO "orchestrator_activity"']


@POSTGRES
def test_on_postgresql_a_call_that_writes_commits_in_one_transaction_that_waits_for_the_disk():
    Account.default()
    sql = statements("RegisterTaskDefinition", WEB)
    assert sql.count("BEGIN") == 1 and sql[-1] == "COMMIT"
    within = sql[sql.index("BEGIN"):]  # the key is read before (authenticated before its turn)
    assert touching(within, "orchestrator_taskdefinition") and touching(within, "orchestrator_trace")
    assert not [s for s in sql if "synchronous_commit" in s]


def test_beginning_a_trace_again_keeps_the_first_row_and_the_transaction_usable():
    account = Account.default()
    with transaction.atomic():
        traces.begin("frontend", "RunTask", account=account, trace_id="0123456789abcdef")
        traces.begin("agent", "die", trace_id="0123456789abcdef")  # on PostgreSQL a failed INSERT would abort
        assert Account.objects.filter(pk=account.pk).exists()
    row = Trace.objects.get(trace_id="0123456789abcdef")
    assert (row.component, row.action, row.account_id) == ("frontend", "RunTask", account.pk)


@POSTGRES
def test_on_postgresql_small_writes_of_two_threads_commit_side_by_side_not_in_turns():
    """SQLite's group commit makes a writer wait for the one leading the turn; on PostgreSQL a
    small write waits for no other thread's (here: the first is held inside its write)."""
    account = Account.default()
    inside, release, errors = threading.Event(), threading.Event(), []

    def held():
        try:
            def write():
                traces.begin("frontend", "first", account=account, trace_id="held000000000000")
                inside.set()
                assert release.wait(30)
            state_database.group_commit(write, synchronous=False)
        except Exception as exc:  # reported to the test, which fails on it
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=held, daemon=True)
    first.start()
    try:
        assert inside.wait(30)
        second = []
        thread = threading.Thread(target=lambda: (second.append(state_database.group_commit(
            lambda: traces.begin("frontend", "second", account=account, trace_id="free000000000000"))),
            connections.close_all()), daemon=True)
        thread.start()
        thread.join(30)
        assert second == ["free000000000000"]  # committed while the first is still inside its write
        assert Trace.objects.filter(trace_id="free000000000000").exists()
        assert not Trace.objects.filter(trace_id="held000000000000").exists()
    finally:
        release.set()
        first.join(30)
    assert not errors and Trace.objects.filter(trace_id="held000000000000").exists()


def test_the_api_threads_open_their_database_connections_at_the_start_not_at_the_first_calls():
    """On PostgreSQL a first connection is a server process and a login: 30 students' first calls
    paid for 16 of them per process (bench/bench_postgres.py)."""
    from config import asgi
    from orchestrator.frontend.asgi import ApiFastPath

    assert asgi.application.application_mapping["lifespan"].warm == asgi.api.warm
    fast = ApiFastPath(asgi.django_asgi_app, threads=4)
    try:
        fast.warm()
        everyone, seen = threading.Barrier(4), []

        def look():  # four at once: one from each of the pool's four threads
            everyone.wait(30)
            return threading.get_ident(), connection.connection is not None

        seen = [future.result() for future in [fast.pool.submit(look) for _ in range(4)]]
        assert len({ident for ident, _ in seen}) == 4
        assert all(connected for _, connected in seen)
    finally:
        closing = threading.Barrier(4)
        for future in [fast.pool.submit(lambda: (closing.wait(30), connections.close_all())) for _ in range(4)]:
            future.result()
        fast.pool.shutdown()
