"""Shared fixtures. Each area keeps its fixtures in tests/support/<area>.py.

Tests marked ``docker`` or ``browser`` need a real Docker engine or Debian's Chromium: they
fail, never skip, when it is missing, so a CI machine without them goes red.
"""
pytest_plugins = [
    "tests.support.docker",
    "tests.support.api",
    "tests.support.lab",
    "tests.support.browser",
    "tests.support.elb",
]
