from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey, Organization
from accounts.services import api_key_create, org_create


class Command(BaseCommand):
    help = "Create an API key for an organisation and print it (once) on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--create-org", action="store_true", help="create the organisation if it does not exist")
        parser.add_argument("--scope", choices=ApiKey.Scope.values, default=ApiKey.Scope.INGEST)
        parser.add_argument("--name", default="cli")

    def handle(self, *args, org, create_org, scope, name, **options):
        organisation = Organization.objects.filter(slug=org).first()
        if organisation is None:
            if not create_org:
                raise CommandError(f"No organisation with slug {org!r} (pass --create-org to create it).")
            organisation = org_create(name=org, slug=org)
            self.stderr.write(f"created organisation {org}")
        created = api_key_create(org=organisation, name=name, scope=scope)
        self.stderr.write(f"{scope} key for {organisation.slug} (shown once):")
        self.stdout.write(created.raw_key)
