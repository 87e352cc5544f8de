"""Which pages may open the dashboard's WebSockets: the lab's own, never another port's.

Browsers send cookies to every port of a host, so a page served by a task or a listener on
127.0.0.1:8081 could otherwise open ``ws://127.0.0.1:8000/ws/…`` with a student's session and
read their logs. ``AllowedHostsOriginValidator`` does not help while ``ALLOWED_HOSTS`` is
``*``. A socket is accepted when its ``Origin`` is the lab's own origin:

1. the origin the browser reached the lab at: the handshake's ``Host`` (same origin, as
   Django's CSRF check does for forms), so a classroom lab on 0.0.0.0 works under any name;
2. the configured ``HOST``:``PORT`` (127.0.0.1, localhost and [::1] for a loopback lab);
3. an origin in ``CSRF_TRUSTED_ORIGINS`` (a lab behind a reverse proxy).

A handshake without ``Origin`` does not come from a browser page and is let through: such a
client already holds whatever cookie it sends.
"""
import logging
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _header(scope, name):
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def configured_origins():
    """The origins the lab's settings name: its HOST and PORT, and CSRF_TRUSTED_ORIGINS."""
    host, port = settings.LAB_HOST, settings.LAB_PORT
    if host in WILDCARD_HOSTS:
        names = ()
    elif host in ("127.0.0.1", "localhost", "::1"):
        names = LOOPBACK_NAMES
    else:
        names = (f"[{host}]" if ":" in host else host,)
    origins = {f"{scheme}://{name}:{port}" for name in names for scheme in ("http", "https")}
    return origins | {o.rstrip("/").lower() for o in settings.CSRF_TRUSTED_ORIGINS}


def _trusted(origin):
    """Whether ``origin`` matches CSRF_TRUSTED_ORIGINS' wildcard form (``https://*.example.com``)."""
    scheme, _, netloc = origin.partition("://")
    for pattern in settings.CSRF_TRUSTED_ORIGINS:
        pattern = pattern.rstrip("/").lower()
        if "://*." in pattern:
            pattern_scheme, _, suffix = pattern.partition("://*")
            if scheme == pattern_scheme and netloc.endswith(suffix):
                return True
    return False


def origin_allowed(scope):
    """Whether the WebSocket handshake in ``scope`` comes from one of the lab's own pages."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    host = (_header(scope, b"host") or "").strip().lower()
    if host and parts.netloc == host and validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
        return True
    allowed = configured_origins()
    default_port = {"http": 80, "https": 443}[parts.scheme]
    return origin in allowed or f"{origin}:{default_port}" in allowed or _trusted(origin)


class LabOriginValidator:
    """ASGI middleware: refuse (HTTP 403 on the handshake) a WebSocket from a foreign page."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        log.warning("refused a WebSocket to %s from origin %s", scope.get("path"), _header(scope, b"origin"))
        return await WebsocketDenier()(scope, receive, send)
