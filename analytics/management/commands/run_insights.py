"""Run the insight detectors now: `manage.py run_insights [--org SLUG] [--now ISO8601]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from analytics.insights.services import insights_run
from ingestion.money import pico_display

from ._now import NOW_HELP, now_arg


class Command(BaseCommand):
    help = "Run the insight detectors (spikes, token bloat, retry loops, model choice, spending cap) and queue alerts."

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="Only this organisation (default: every organisation).")
        parser.add_argument("--now", metavar="ISO8601", help=NOW_HELP + " Replays back-filled history.")

    def handle(self, *args, org=None, now=None, **options):
        when = now_arg(now)
        orgs = Organization.objects.order_by("slug")
        if org:
            orgs = orgs.filter(slug=org)
            if not orgs.exists():
                raise CommandError(f"no organisation with slug {org!r}")
        total = new = 0
        for organisation in orgs:
            for insight in insights_run(org=organisation, now=when):
                total += 1
                new += insight.is_new
                state = "new " if insight.is_new else "seen"
                self.stdout.write(f"{organisation.slug}\t{state}\t{insight.kind}\t{pico_display(insight.amount_exact_pico)}\t"
                                  f"{insight.title}")
        self.stdout.write(f"{total} insight(s), {new} new")
