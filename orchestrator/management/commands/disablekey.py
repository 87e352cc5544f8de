"""``manage.py disablekey KEY_ID``: switch an access key off (requests signed with it are
refused as with an unknown key); the lab never turns it back on by itself."""
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from orchestrator.models import AccessKey, Account


class Command(BaseCommand):
    help = (
        "Disable an access key (default: the documented key test): the API then refuses requests "
        "signed with it. A classroom lab (HOST not loopback) refuses to start while test / test is "
        "active. --enable switches the key on again."
    )

    def add_arguments(self, parser):
        parser.add_argument("key_id", nargs="?", default=AccessKey.DEFAULT_ID, help="the access key id (default: test)")
        parser.add_argument("--enable", action="store_true", help="switch the key on again instead")

    def handle(self, *args, key_id, enable, **options):
        call_command("migrate", interactive=False, verbosity=0)
        Account.default()  # on a lab never started yet, test / test comes into being here, to be disabled
        if not AccessKey.objects.filter(access_key_id=key_id).update(active=enable):
            raise CommandError(f"No access key {key_id!r}: nothing to change.")
        self.stdout.write(f"access key {key_id} {'enabled' if enable else 'disabled'}")
