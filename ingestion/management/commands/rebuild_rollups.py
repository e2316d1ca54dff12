"""`manage.py rebuild_rollups`: recompute every rollup, run summary and run facet from the events."""

from __future__ import annotations

from datetime import datetime, time, timezone

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Organization
from ingestion.rollups import rollups_rebuild


class Command(BaseCommand):
    help = ("Recompute the rollups, run summaries and run facets of every organisation (or one) from its "
            "stored events, in one transaction per organisation. Idempotent: on a healthy database it changes "
            "nothing. Used after a migration adds a rollup grain, and by the tests as the oracle.")

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="only this organisation")
        parser.add_argument("--since", metavar="DATE", help="only from this UTC day on (YYYY-MM-DD); runs with an "
                                                            "event from then on are recomputed whole")

    def handle(self, *args, org: str | None = None, since: str | None = None, **options):
        since_at = None
        if since:
            try:
                since_at = datetime.combine(datetime.strptime(since, "%Y-%m-%d").date(), time(), tzinfo=timezone.utc)
            except ValueError as exc:
                raise CommandError(f"--since must be a date YYYY-MM-DD, not {since!r}") from exc
        orgs = Organization.objects.order_by("pk")
        if org:
            orgs = orgs.filter(slug=org)
            if not orgs.exists():
                raise CommandError(f"no organisation with slug {org!r}")
        count = 0
        for org_id in orgs.values_list("pk", flat=True):
            with transaction.atomic():
                rollups_rebuild(org_id=org_id, since=since_at)
            count += 1
        self.stdout.write(f"rebuilt the rollups of {count} organisation(s)" + (f" since {since}" if since else ""))
