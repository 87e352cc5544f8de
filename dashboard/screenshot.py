"""Screenshot the component map of a sample lab into docs/map.png (run by hand, no Docker needed).

    .venv/bin/python -m dashboard.screenshot [docs/map.png] [--width 1280] [--height 720] [--full-page]

Uses a throwaway database filled by ``dashboard.sample``, serves the ASGI app with uvicorn on a
free port, logs in as admin in Debian's Chromium and waits for the live socket; then records a
RunTask's steps, as the control plane would, and shoots the first screen mid-animation.
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def _setup_django(workdir):
    """Point Django at a fresh database in ``workdir`` and migrate it."""
    os.environ["FARGATE_LAB_DB"] = os.path.join(workdir, "lab.sqlite3")
    os.environ["FARGATE_LAB_VAR"] = workdir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Playwright's sync API keeps an event loop in this thread; our ORM calls are plain sync code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def serve():
    """uvicorn serving the lab's ASGI app (lifespan off) in a thread on a free port; returns
    (server, port). The dashboard benchmark serves its pages with it too."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config("config.asgi:application", host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    return server, port


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="docs/map.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--full-page", action="store_true", help="the whole page, the cards below the map too")
    args = parser.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"Chromium is missing at {CHROMIUM} (apt-get install chromium)")
    _setup_django(tempfile.mkdtemp(prefix="fargate-lab-shot-"))
    from playwright.sync_api import sync_playwright

    from dashboard import bootstrap, sample

    sample.populate(tasks=24, instances=3)
    bootstrap.ensure_admin()
    server, port = serve()
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(url + "/accounts/login/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin")
            page.click("button[type=submit]")
            page.wait_for_selector("#live-status[data-state=open]")
            sample.run_task_steps()
            page.wait_for_selector("#map-diagram .node[data-component=docker].lit")
            page.screenshot(path=args.output, full_page=args.full_page)
            browser.close()
    finally:
        server.should_exit = True
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main(sys.argv[1:])
