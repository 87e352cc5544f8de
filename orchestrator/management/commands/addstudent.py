"""``manage.py addstudent NAME``: a dashboard user with an AWS account of their own and an
access key for the AWS CLI, for a classroom sharing one lab."""
import secrets
import string

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orchestrator.models import AccessKey, Account

KEY_ALPHABET = string.ascii_uppercase + string.digits


def next_account_id():
    """The smallest 12-digit account id after the ones in use (the default is 000000000000)."""
    used = set(Account.objects.values_list("account_id", flat=True))
    number = 1
    while f"{number:012d}" in used:
        number += 1
    return f"{number:012d}"


class Command(BaseCommand):
    help = (
        "Create a student: a dashboard user NAME, an AWS account of their own (the next free "
        "12-digit id) that the user is a member of, and an access key for the AWS CLI; print the "
        "credentials. On the dashboard the student sees and acts as that account only; with the "
        "key, the API does the same."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the dashboard user name (also the account's name)")
        parser.add_argument("--password", help="the dashboard password (default: a generated one, printed)")

    def handle(self, *args, name, password=None, **options):
        users = get_user_model()
        if users.objects.filter(username=name).exists():
            raise CommandError(f"A user named {name!r} already exists; choose another name.")
        password = password or secrets.token_urlsafe(9)
        key_id = "AKIA" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        with transaction.atomic():
            user = users.objects.create_user(name, password=password)
            account = Account.objects.create(account_id=next_account_id(), name=name)
            account.members.add(user)
            AccessKey.objects.create(account=account, access_key_id=key_id, secret_access_key=secret)
        self.stdout.write(
            f"student {name}: dashboard password {password}\n"
            f"  account {account.account_id}\n"
            f"  AWS_ACCESS_KEY_ID={key_id}\n"
            f"  AWS_SECRET_ACCESS_KEY={secret}\n"
        )
