"""`dumpdata`, unchanged except that it may read tenant tables: a dump is every tenant's rows by nature."""

from django.core.management.commands import dumpdata

from accounts.models import _reads_across_tenants


class Command(dumpdata.Command):
    help = dumpdata.Command.help + " Tenant tables are dumped for every organisation (an operator's tool)."

    def handle(self, *app_labels, **options):
        with _reads_across_tenants():
            return super().handle(*app_labels, **options)
