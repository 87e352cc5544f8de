"""Helpers every test area shares: polling a condition with a deadline, a free port, whether
something answers HTTP, and the demo image (built once per test session)."""
import asyncio
import functools
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {message} (last value: {value!r})")
        time.sleep(interval)  # the polling interval, not a fixed wait standing in for the condition


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_http(port, timeout=1.0):
    """True if something answers HTTP on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


@functools.cache
def build_demo_image(image=None):
    """Build the demo image offline with demo/build.sh (once per session and tag); returns its
    name. Fails the test (never skips) when the build fails, e.g. with no Docker engine."""
    args = [str(ROOT / "demo" / "build.sh"), *([image] if image else [])]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"demo/build.sh failed: {result.stderr or result.stdout}")
    return result.stdout.strip().splitlines()[-1]


def run_scenario(coroutine, timeout=20.0, cleanup=5.0):
    """Run an async scenario on a fresh event loop in a thread of its own, within ``timeout`` s.

    What it leaves behind (a consumer's tasks, a channel layer's receive) is cancelled and given
    ``cleanup`` s to end, never waited on for ever: ``asyncio.run`` waits for every cancelled
    task, so one that does not end would hold the test suite up until CI's time limit."""
    from concurrent.futures import ThreadPoolExecutor

    def body():
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coroutine, timeout))
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=cleanup))
            loop.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(body).result()
