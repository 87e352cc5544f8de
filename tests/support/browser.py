"""Fixtures: a real headless Chromium and the lab's ASGI app under uvicorn, for browser tests.

``live_lab_server`` serves ``config.asgi.application`` (HTTP, WebSockets) from a uvicorn
thread on a free port against the test database, with the lifespan OFF so that the test
decides whether a control plane runs. ``browser`` is Debian's Chromium through Playwright:
it FAILS, never skips, when /usr/bin/chromium is missing.
"""
import os
import threading

import pytest

from tests.support.common import free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
PASSWORD = "correct horse battery staple"


class LiveLabServer:
    """uvicorn serving the lab's ASGI application in a thread of the test process."""

    def __init__(self, lifespan="off"):
        self.lifespan = lifespan
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = self.thread = None

    def start(self):
        import uvicorn

        from config.asgi import application

        config = uvicorn.Config(
            application, host="127.0.0.1", port=self.port, lifespan=self.lifespan, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-lab-server", daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=15, message="uvicorn to start")
        return self

    def stop(self):
        """Shut down as on SIGTERM: open WebSockets are closed with 1012 (service restart)."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "uvicorn did not stop"

    def restart(self):
        """Stop and serve again on the same port, as a restarted lab would."""
        self.stop()
        return self.start()


@pytest.fixture
def live_lab_server(transactional_db):
    """The lab's ASGI app (HTTP + WebSockets) on a free port, lifespan off, on the test DB."""
    server = LiveLabServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """A headless Debian Chromium driven by Playwright (fails when Chromium is missing)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install Debian's chromium package (apt-get install chromium).")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test
    # itself are plain synchronous code, so Django's async-safety check does not apply.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def dashboard_user(transactional_db, django_user_model):
    """Alice, who may use the dashboard."""
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def page(browser, live_lab_server, dashboard_user):
    """A browser page logged in as alice on the live lab server."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    tab.goto(live_lab_server.url + "/accounts/login/")
    tab.fill("input[name=username]", dashboard_user.username)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(live_lab_server.url + "/")
    yield tab
    context.close()


def admin_page(browser, base_url, viewport):
    """A new page of ``base_url``'s dashboard, logged in with the documented default admin / admin
    (close it with ``page.context.close()``)."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "admin")
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    return page


def wait_live(tab):
    """Wait until the page's WebSocket is open (the badge says "live")."""
    tab.wait_for_selector("#live-status[data-state=open]")
