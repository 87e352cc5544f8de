"""Fixtures: dashboard — alice, who may use the dashboard, and a test client logged in as her."""
import pytest


@pytest.fixture
def alice(django_user_model):
    """Alice, a dashboard user (password "pw")."""
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def alice_client(client, alice):
    """A Django test client logged in as alice."""
    client.force_login(alice)
    return client


@pytest.fixture(autouse=True)
def fresh_login_throttle():
    """Every test starts with no failed logins counted (the throttle's cache is per process)."""
    from django.core.cache import caches

    caches["login-throttle"].clear()
    yield
    caches["login-throttle"].clear()
