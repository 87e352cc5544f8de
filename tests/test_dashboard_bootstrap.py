"""First-run access: the admin user, and the refusal to listen beyond loopback with its default password."""
import pytest
from django.contrib.auth import get_user_model

from dashboard.bootstrap import DefaultPasswordRefused, ensure_admin, refuse_default_password

pytestmark = pytest.mark.django_db


def test_it_creates_admin_once():
    assert ensure_admin() is True
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("admin")
    assert ensure_admin() is False
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_it_keeps_a_changed_password():
    ensure_admin()
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("s3cret-enough")
    admin.save(update_fields=["password"])
    ensure_admin()
    admin.refresh_from_db()
    assert admin.check_password("s3cret-enough")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_it_allows_the_default_password_on_loopback(host):
    ensure_admin()
    refuse_default_password(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "lab.example.org", ""])
def test_it_refuses_the_default_password_beyond_loopback(host):
    ensure_admin()
    with pytest.raises(DefaultPasswordRefused, match="default password"):
        refuse_default_password(host)


def test_it_allows_any_host_once_the_password_changed():
    ensure_admin()
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("s3cret-enough")
    admin.save(update_fields=["password"])
    refuse_default_password("0.0.0.0")


def test_it_lets_admin_into_the_admin_site(client):
    ensure_admin()
    assert client.login(username="admin", password="admin")
    assert client.get("/admin/").status_code == 200
