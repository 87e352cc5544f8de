"""``manage.py addstudent NAME`` or ``manage.py addstudent --count 30 --prefix s``: dashboard users
with an AWS account of their own and an access key for the AWS CLI, for a classroom sharing one lab;
the batch form prints a sheet of logins and keys to hand out."""
import secrets
import string

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orchestrator.models import AccessKey, Account

KEY_ALPHABET = string.ascii_uppercase + string.digits
# The most students one command creates (a classroom, not a load test).
MAX_COUNT = 500


def next_account_id():
    """The smallest 12-digit account id after the ones in use (the default is 000000000000)."""
    used = set(Account.objects.values_list("account_id", flat=True))
    number = 1
    while f"{number:012d}" in used:
        number += 1
    return f"{number:012d}"


def hashed_password(password=None):
    """(password, its hash): a generated password when none is given. Hashing takes a good part
    of a second of CPU (PBKDF2): do it before the transaction, which holds the database's write
    lock, and with it every API call and the running lab's control plane, until it commits (30
    students hashed inside it held a running lab's writes for 28 s: bench/bench_labs.py)."""
    password = password or secrets.token_urlsafe(9)
    return password, make_password(password)


def create_student(name, password):
    """A user ``name``, an account of their own with the user as member, and an access key:
    (user, account, password, key id, secret). ``password``: ``hashed_password()``'s pair. Call
    inside a transaction."""
    password, hashed = password
    key_id = "AKIA" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    user = get_user_model().objects.create_user(name)
    user.password = hashed
    user.save(update_fields=["password"])
    account = Account.objects.create(account_id=next_account_id(), name=name)
    account.members.add(user)
    AccessKey.objects.create(account=account, access_key_id=key_id, secret_access_key=secret)
    return user, account, password, key_id, secret


def free_names(prefix, count):
    """``count`` names prefix01, prefix02, … (zero-padded to sort in order), skipping taken ones."""
    taken = set(get_user_model().objects.filter(username__startswith=prefix).values_list("username", flat=True))
    width = max(2, len(str(count)))
    names, number = [], 1
    while len(names) < count:
        name = f"{prefix}{number:0{width}d}"
        if name not in taken:
            names.append(name)
        number += 1
    return names


def lab_url():
    """The URL students reach the lab at (the advertised address when it listens on every address)."""
    from orchestrator.network import advertised_host

    return f"http://{advertised_host()}:{settings.LAB_PORT}"


class Command(BaseCommand):
    help = (
        "Create a student: a dashboard user NAME, an AWS account of their own (the next free "
        "12-digit id) that the user is a member of, and an access key for the AWS CLI; print the "
        "credentials. With --count N (and --prefix P, default 's') create N students P01..PN "
        "(names already taken are skipped) and print a sheet of logins and keys to hand out. On "
        "the dashboard a student sees and acts as their account only; with the key, the API does "
        "the same."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="the dashboard user name (also the account's name)")
        parser.add_argument("--password", help="the dashboard password (default: a generated one, printed)")
        parser.add_argument("--count", type=int, help=f"create this many students (1-{MAX_COUNT}) named PREFIX01…")
        parser.add_argument("--prefix", default="s", help="the user names' prefix with --count (default: s)")

    def handle(self, *args, name=None, password=None, count=None, prefix="s", **options):
        if count is None:
            if not name:
                raise CommandError("Give a user NAME, or --count N (with --prefix P) for a class.")
            return self.one(name, password)
        if name or password:
            raise CommandError("--count creates students named PREFIX01…: give no NAME or --password with it.")
        if not 1 <= count <= MAX_COUNT:
            raise CommandError(f"--count must be between 1 and {MAX_COUNT}.")
        if not prefix or len(prefix) > 100 or not all(c.isalnum() or c in "_-." for c in prefix):
            raise CommandError("--prefix must be 1-100 letters, digits, '_', '-' or '.'.")
        return self.sheet(prefix, count)

    def one(self, name, password):
        if get_user_model().objects.filter(username=name).exists():
            raise CommandError(f"A user named {name!r} already exists; choose another name.")
        hashed = hashed_password(password)
        with transaction.atomic():
            _, account, password, key_id, secret = create_student(name, hashed)
        self.stdout.write(
            f"student {name}: dashboard password {password}\n"
            f"  account {account.account_id}\n"
            f"  AWS_ACCESS_KEY_ID={key_id}\n"
            f"  AWS_SECRET_ACCESS_KEY={secret}\n"
        )

    def sheet(self, prefix, count):
        """Create the class in one transaction (its passwords hashed before it), then print one slip
        per student."""
        passwords = [hashed_password() for _ in range(count)]
        with transaction.atomic():
            students = [create_student(name, password) for name, password in zip(free_names(prefix, count), passwords)]
        url = lab_url()
        self.stdout.write(f"Fargate Lab class sheet: {count} students. Dashboard and API: {url}\n")
        for user, account, password, key_id, secret in students:
            self.stdout.write(
                "-" * 72 + "\n"
                f"student {user.username}: dashboard password {password}\n"
                f"  account {account.account_id}\n"
                f"  dashboard  {url}/  (user {user.username})\n"
                f"  export AWS_ACCESS_KEY_ID={key_id}\n"
                f"  export AWS_SECRET_ACCESS_KEY={secret}\n"
                f"  export AWS_DEFAULT_REGION={settings.FARGATE_LAB['REGION']}\n"
                f"  aws --endpoint-url {url} ecs list-clusters\n"
            )
