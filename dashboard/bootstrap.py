"""First-run access: the admin user of a fresh lab, and the refusal to expose its default
password or its default access key beyond this machine."""
import ipaddress

from django.contrib.auth import get_user_model

ADMIN_USERNAME = "admin"
DEFAULT_PASSWORD = "admin"


class DefaultPasswordRefused(RuntimeError):
    """The lab would listen beyond this machine while the admin still has the default password."""


class DefaultKeyRefused(RuntimeError):
    """The lab would listen beyond this machine while the access key test / test still works."""


def ensure_admin():
    """Create the superuser admin / admin when no user named admin exists; True if created."""
    users = get_user_model()
    if users.objects.filter(username=ADMIN_USERNAME).exists():
        return False
    users.objects.create_superuser(ADMIN_USERNAME, email="", password=DEFAULT_PASSWORD)
    return True


def is_loopback(host):
    """Whether ``host`` (an address or "localhost") is reachable from this machine only."""
    host = (host or "").strip().strip("[]")
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or 0.0.0.0 may be reachable from elsewhere


def refuse_default_password(host):
    """Raise DefaultPasswordRefused when ``host`` is not loopback and admin's password is still "admin"."""
    if is_loopback(host):
        return
    admin = get_user_model().objects.filter(username=ADMIN_USERNAME).first()
    if admin is not None and admin.check_password(DEFAULT_PASSWORD):
        raise DefaultPasswordRefused(
            f"Refusing to listen on {host}: the user {ADMIN_USERNAME!r} still has the default password "
            f"{DEFAULT_PASSWORD!r}, and anyone on the network could log in. Change it first "
            f"(python manage.py changepassword {ADMIN_USERNAME}) or listen on 127.0.0.1."
        )


def refuse_default_key(host):
    """Raise DefaultKeyRefused when ``host`` is not loopback and the key test / test is active.

    That key is in the README: on a classroom lab anyone could use it to act as the default
    account (the teacher's, and every user's who belongs to no account).
    """
    from orchestrator.models import AccessKey

    if is_loopback(host) or not AccessKey.default_key_active():
        return
    raise DefaultKeyRefused(
        f"Refusing to listen on {host}: the access key {AccessKey.DEFAULT_ID!r} still has the default secret "
        f"{AccessKey.DEFAULT_SECRET!r}, and anyone on the network could use the API as the default account. "
        f"Disable it first (python manage.py disablekey {AccessKey.DEFAULT_ID}); give the teacher a key of "
        "their own with python manage.py addstudent, or listen on 127.0.0.1."
    )
