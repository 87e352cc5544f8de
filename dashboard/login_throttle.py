"""Login throttling for the dashboard and the admin: per user name and per client address.

A student could otherwise try passwords as fast as the server answers (the probe: 100 wrong
ones in 23 s, then the right one worked). Failed logins are counted in a cache window; once a
user name or an address reaches its limit, every login for it, even with the right password,
is refused until the window ends, with a form error that says when to retry. A success
clears the user's count, never the address's: a student who logs in to their own account
between guesses gains nothing. The counts live in the ``login-throttle`` cache (per process).
"""
import hashlib
import time

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import caches
from django.core.exceptions import ValidationError

from orchestrator.models import lab_setting


def _cache():
    return caches["login-throttle"]


def _key(kind, value):
    return f"login:{kind}:{hashlib.sha256(str(value).encode()).hexdigest()}"


def _subjects(username, address):
    """(cache key, limit) for each thing a login attempt counts against."""
    return [(_key("user", username or ""), lab_setting("LOGIN_FAILURES_PER_USER")),
            (_key("address", address or ""), lab_setting("LOGIN_FAILURES_PER_ADDRESS"))]


def retry_after(username, address, now=None):
    """Seconds until a login for ``username`` from ``address`` is allowed again; 0 if it is now."""
    now = now or time.time()
    wait = 0
    for key, limit in _subjects(username, address):
        count, ends = _cache().get(key, (0, 0))
        if count >= limit and ends > now:
            wait = max(wait, ends - now)
    return int(wait + 0.999)


def record_failure(username, address, now=None):
    """Count a failed login against the user name and the address."""
    now = now or time.time()
    window = lab_setting("LOGIN_THROTTLE_SECONDS")
    for key, _ in _subjects(username, address):
        count, ends = _cache().get(key, (0, 0))
        if ends <= now:
            count, ends = 0, now + window
        _cache().set(key, (count + 1, ends), timeout=max(1, int(ends - now + 1)))


def record_success(username):
    """A right password clears the user's count (the address keeps its own)."""
    _cache().delete(_key("user", username or ""))


def _wait_text(seconds):
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


class ThrottledLogin:
    """Mixin for an AuthenticationForm: refuse while throttled, count failures, clear on success."""

    def clean(self):
        username = self.cleaned_data.get("username")
        address = self.request.META.get("REMOTE_ADDR") if self.request else None
        wait = retry_after(username, address)
        if wait:
            raise ValidationError(
                "Too many failed logins for this user or from this address. Try again in %(wait)s.",
                code="throttled", params={"wait": _wait_text(wait)},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            record_failure(username, address)
            raise
        record_success(username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLogin, AuthenticationForm):
    """The dashboard's login form."""


class ThrottledAdminAuthenticationForm(ThrottledLogin, AdminAuthenticationForm):
    """The Django admin's login form."""
