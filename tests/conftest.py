"""Shared fixtures. Each area keeps its fixtures in tests/support/<area>.py.

Tests marked ``docker`` or ``browser`` need a real Docker engine or Debian's Chromium: they
fail, never skip, when it is missing, so a CI machine without them goes red.

Tests that restart the Docker daemon (they use the ``restart_docker`` fixture) stop every
container on the engine, the user's own included, so they run only where that is agreed:
in CI (``CI=true``) or with ``FARGATE_LAB_ALLOW_DOCKER_RESTART=1``.
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
]


def docker_restart_allowed():
    """Whether this run may restart the Docker daemon."""
    return os.environ.get("CI") == "true" or os.environ.get("FARGATE_LAB_ALLOW_DOCKER_RESTART") == "1"


def pytest_collection_modifyitems(config, items):
    """Hold back the daemon-restarting tests on a machine that did not agree to it."""
    if docker_restart_allowed():
        return
    reason = (
        "restarts the Docker daemon, stopping every container on it; "
        "runs in CI, or here with FARGATE_LAB_ALLOW_DOCKER_RESTART=1"
    )
    for item in items:
        if "restart_docker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=reason))
