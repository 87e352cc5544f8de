"""``manage.py setquota ACCOUNT --fargate-on-demand-vcpu 2 …``: set (or, with ``default``, clear)
an account's service quotas, as a teacher does on the account's quota page; prints them."""
from django.core.management.base import BaseCommand, CommandError

from orchestrator import quotas
from orchestrator.models import Account


def option_of(quota):
    """The command-line option of a quota's field: fargate_on_demand_vcpu_quota -> --fargate-on-demand-vcpu."""
    return "--" + quota.field.removesuffix("_quota").replace("_", "-")


class Command(BaseCommand):
    help = ("Set an account's service quotas (named as AWS Service Quotas names them); a value of "
            "'default' clears the account's own value, back to the lab's default. Prints the "
            "applied quotas.")

    def add_arguments(self, parser):
        parser.add_argument("account", help="the 12-digit account id, or the name of a user who is a member of it")
        for quota in quotas.QUOTAS:
            parser.add_argument(option_of(quota), dest=quota.field, metavar="N",
                                help=f"{quota.name} ({quota.unit})")

    def handle(self, *args, account, **options):
        found = Account.objects.filter(account_id=account).first() or \
            Account.objects.filter(members__username=account).order_by("pk").first()
        if found is None:
            raise CommandError(f"No account {account!r} (give an account id or a member's user name).")
        for quota in quotas.QUOTAS:
            given = options.get(quota.field)
            if given is None:
                continue
            if given == "default":
                setattr(found, quota.field, None)
                continue
            try:
                number = float(given) if quota.unit == "vCPU" else int(given)
            except ValueError:
                raise CommandError(f"{option_of(quota)} takes a number or 'default', not {given!r}.") from None
            if number < 0:
                raise CommandError(f"{option_of(quota)} must not be negative.")
            setattr(found, quota.field, number)
        found.save(update_fields=[quota.field for quota in quotas.QUOTAS])
        for quota, value, own, in_use in quotas.usage(found):
            origin = "set" if own else "default"
            self.stdout.write(f"{quota.name}: {value:g} {quota.unit} ({origin}; in use {in_use:g})\n")
