"""Shared fixtures. Each area keeps its fixtures in tests/support/<area>.py.

Tests marked ``docker`` or ``browser`` need a real Docker engine or Debian's Chromium: they
fail, never skip, when it is missing, so a CI machine without them goes red.

Tests that restart the Docker daemon (they use the ``restart_docker`` fixture) stop every
container on the engine, the user's own included, so they run only where that is agreed:
in CI (``CI=true``) or with ``FARGATE_LAB_ALLOW_DOCKER_RESTART=1``.

Tests marked ``postgres`` are about the PostgreSQL state database (LISTEN/NOTIFY, several
processes on one database): they run when DATABASE_URL names one (CI's second run) and are
deselected, with a line saying so, on the embedded SQLite. Tests marked ``sqlite`` are about the
embedded engine itself (orchestrator/state_database) and are deselected on PostgreSQL.
"""
import os

import pytest

pytest_plugins = [
    "tests.support.docker",
    "tests.support.api",
    "tests.support.lab",
    "tests.support.browser",
    "tests.support.elb",
    "tests.support.dashboard",
    "tests.support.classroom",
    "tests.support.servers",
]


@pytest.fixture(scope="session", autouse=True)
def postgres_test_database_closes(request):
    """On PostgreSQL: before the test database is dropped, end the sessions threads left open on
    it (a persistent connection per thread that ran a query), which would make the drop fail."""
    if not os.environ.get("DATABASE_URL"):
        yield
        return
    request.getfixturevalue("django_db_setup")
    yield
    from django.db import connection

    from orchestrator import bus

    bus.unshare()
    with request.getfixturevalue("django_db_blocker").unblock():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        connection.close()


def docker_restart_allowed():
    """Whether this run may restart the Docker daemon."""
    return os.environ.get("CI") == "true" or os.environ.get("FARGATE_LAB_ALLOW_DOCKER_RESTART") == "1"


def pytest_collection_modifyitems(config, items):
    """Leave out the PostgreSQL tests on SQLite; hold back the daemon-restarting tests on a
    machine that did not agree to it."""
    other_engine = "sqlite" if os.environ.get("DATABASE_URL") else "postgres"
    left_out = [item for item in items if item.get_closest_marker(other_engine)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker(other_engine)]
        config._fargatelab_engine_deselected = (other_engine, len(left_out))
    if docker_restart_allowed():
        return
    reason = (
        "restarts the Docker daemon, stopping every container on it; "
        "runs in CI, or here with FARGATE_LAB_ALLOW_DOCKER_RESTART=1"
    )
    for item in items:
        if "restart_docker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter, config):
    engine, left_out = getattr(config, "_fargatelab_engine_deselected", (None, 0))
    if engine == "postgres":
        terminalreporter.write_line(
            f"{left_out} PostgreSQL test(s) deselected on SQLite: run them with DATABASE_URL=postgres://… "
            "(see the README's \"Tests and benchmarks\"; CI's second run does)")
    elif engine == "sqlite":
        terminalreporter.write_line(f"{left_out} test(s) of the embedded SQLite engine deselected on PostgreSQL")
