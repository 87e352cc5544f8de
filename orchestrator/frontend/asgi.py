"""AWS API calls straight from uvicorn to their view, on a fixed pool of threads.

Django's ASGI handler takes each request through the dashboard's middleware (sessions, the
logged-in user, CSRF, messages, view-as): an async chain in which every middleware's
``process_request``/``process_response`` is a hop to a thread and back, and the sync one
(view-as) a hop back to the event loop. Each request also runs in a thread context of its own,
so each opened a new database connection (and on SQLite reran the PRAGMAs). A signed API call
needs none of that middleware: ``config.urls.root`` routes it by its X-Amz-Target or its
credential scope, the view authenticates it (SigV4) and catches its own errors.

So a POST to / that carries X-Amz-Target, or is signed for ``elasticloadbalancing``, goes from
here to ``root`` in one hop to one of ``THREADS`` long-lived threads, each keeping its
database connection from call to call (``CONN_MAX_AGE``), and its answer goes back as
Django's handler sends it. Everything else (the dashboard, the admin, the registry's
notifications, WebSockets) goes to Django's handler as before.

The threads and their connections are made at the server's start (``warm``, from the
lifespan), with botocore's ECS model that validation reads, not by the first calls: on
PostgreSQL a connection is a new server process and its login, and 30 students' first calls at
once each also loaded the model (1.8–2.2 s for the first CreateCluster on three processes
against 0.56 s on SQLite's one, bench/bench_postgres.py): alone, the API's p99.
"""
import asyncio
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.exception import convert_exception_to_response
from django.db import DatabaseError, close_old_connections, connection
from django.http import HttpResponseBadRequest

log = logging.getLogger(__name__)

# As many calls at once as the class's clients send (more wait their turn in the pool's queue;
# one interpreter runs them all anyway).
THREADS = 16
_ELBV2_SCOPE = re.compile(rb"Credential=[^/,\s]*/[0-9]{8}/[^/,\s]*/elasticloadbalancing/aws4_request")


def is_api_call(scope):
    """Whether an HTTP request is a signed AWS API call that ``root`` sends to an API view."""
    if scope["method"] != "POST" or scope["path"] != "/":
        return False
    for name, value in scope["headers"]:
        if name == b"x-amz-target" or (name == b"authorization" and _ELBV2_SCOPE.search(value)):
            return True
    return False


class ApiFastPath:
    """ASGI app: API calls to the pool (see the module docstring), the rest to ``django``."""

    def __init__(self, django, threads=THREADS):
        from config.urls import root

        self.django = django
        self.view = convert_exception_to_response(root)
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="aws-api")

    def warm(self, timeout=30):
        """Start every thread of the pool and open its database connection, after loading what
        every call needs once: the operations' modules and botocore's ECS model, which the first
        calls otherwise each loaded at once (``lru_cache`` does not make concurrent misses wait).
        See the module docstring; a connection that fails now is opened by the first call."""
        from orchestrator.frontend import operations  # noqa: F401  (registers every operation)
        from orchestrator.frontend.validation import service_model

        service_model()
        everyone = threading.Barrier(self.threads)  # holds each thread until all are made

        def connect():
            try:
                everyone.wait(timeout)
            except threading.BrokenBarrierError:
                pass
            try:
                connection.ensure_connection()
            except DatabaseError:
                log.warning("the API's database connection could not be opened ahead", exc_info=True)

        for future in [self.pool.submit(connect) for _ in range(self.threads)]:
            future.result()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_api_call(scope):
            return await self.django(scope, receive, send)
        try:
            body = await self.django.read_body(receive)
        except RequestAborted:
            return
        try:
            try:
                request = self.django.request_class(scope, body)
            except UnicodeDecodeError:
                response = HttpResponseBadRequest()
            else:
                response = await asyncio.get_running_loop().run_in_executor(self.pool, self._answer, request)
            await self.django.send_response(response, send)
        finally:
            body.close()

    def _answer(self, request):
        """Run in a pool thread: the view, between Django's per-request connection checks."""
        signals.request_started.send(sender=self.__class__, environ=request.META)
        try:
            return self.view(request)
        finally:
            close_old_connections()  # a broken or obsolete connection is not kept for the next call
