"""Fixtures: the state database and Redis as other processes see them.

``elsewhere(code)`` runs Python in a second process on this test's own state database (SQLite
file or PostgreSQL test database), set up as a second server process would be, so that a test
sees what one process's writes do to another's pages and control plane. ``redis_url`` is the
Redis server of REDIS_URL, or, without it, a private ``redis-server`` started for the session.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from urllib.parse import quote

import pytest

from tests.support.common import ROOT, free_port, wait_until


def database_env():
    """The environment that points a process at this test's state database."""
    from django.db import connection

    database = connection.settings_dict
    if connection.vendor == "postgresql":
        credentials = quote(database["USER"] or "", safe="")
        if database.get("PASSWORD"):
            credentials += ":" + quote(database["PASSWORD"], safe="")
        host = f"{credentials}@{database['HOST'] or 'localhost'}:{database['PORT'] or 5432}"
        return {"DATABASE_URL": f"postgres://{host}/{database['NAME']}"}
    return {"FARGATE_LAB_DB": str(database["NAME"])}


def elsewhere(code, timeout=60, **env):
    """Run ``code`` (Django set up) in another process on this test's database; its stdout."""
    from django.conf import settings

    program = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    environment = {**os.environ, **database_env(), "FARGATE_LAB_ID": settings.FARGATE_LAB["LAB_ID"],
                   "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"the other process failed:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """REDIS_URL's server, or a private redis-server (fails, never skips, when none can start)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("these tests need Redis: set REDIS_URL, or install Debian's redis-server")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(workdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    def answers():
        try:
            return redis.Redis(port=port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    try:
        wait_until(answers, timeout=20, message="a private redis-server to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
