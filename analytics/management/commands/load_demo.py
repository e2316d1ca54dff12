"""`manage.py load_demo`: the demo organisation, written through the real ingestion path.

Idempotent: the user, org and key are reused; events are generated only when the org has none
(`--force` adds them anyway; their fixed event ids make re-sent ones count once).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from django.core.management.base import BaseCommand

from accounts.models import ApiKey, Membership, Organization, User
from accounts.services import api_key_create, membership_add, org_create
from analytics.demo import demo_events
from analytics.insights.demo import demo_cap_set, insight_demo_events
from analytics.insights.services import insights_run
from ingestion.models import ModelPrice, TraceEvent
from ingestion.schema import batch_decode, events_validate
from ingestion.services import batch_process, events_ingest

from ._now import now_arg

DEMO_EMAIL = "demo@llmobserve.dev"
DEMO_PASSWORD = "llmobserve-demo"
DEMO_ORG = "Demo Co"
DEMO_SLUG = "demo-co"
BATCH = 1000


class Command(BaseCommand):
    help = "Create the demo user and organisation with ~30 days of realistic events. Prints the login last."

    def add_arguments(self, parser):
        parser.add_argument("--email", default=DEMO_EMAIL)
        parser.add_argument("--password", default=DEMO_PASSWORD)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--force", action="store_true", help="Ingest the history even if the org has events.")
        parser.add_argument("--now", metavar="ISO8601",
                            help="Build the history as of this moment, ISO 8601 with a timezone (e.g. "
                                 "2026-11-29T23:40:00Z); default: the current time. The collector refuses "
                                 "events from the future, so it cannot be later than the clock.")

    def handle(self, *args, email: str, password: str, seed: int, force: bool, now: str | None = None,
               **options):
        when = now_arg(now)
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email, password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        org = Organization.objects.filter(slug=DEMO_SLUG).first() or org_create(name=DEMO_ORG, slug=DEMO_SLUG)
        membership_add(org=org, user=user, role=Membership.Role.OWNER)

        key = ApiKey.objects.for_org(org).filter(name="demo read key", revoked_at__isnull=True).first()
        if key is None:
            created = api_key_create(org=org, name="demo read key", scope=ApiKey.Scope.READ, created_by=user)
            key = created.api_key
            self.stdout.write(f"demo read key (shown once): {created.raw_key}")

        if not ModelPrice.objects.unscoped().exists():
            self.stderr.write("warning: the price table is empty, so every demo call is unpriced; "
                              "run `manage.py sync_prices` first (make demo does).")

        if TraceEvent.objects.for_org(org).exists() and not force:
            self.stdout.write(f"{org.name} already has events; not adding more (use --force).")
        else:
            now = when or datetime.now(timezone.utc)
            # The steady history, plus the patterns each insight detector should find in it.
            events = demo_events(now=now, seed=seed) + insight_demo_events(now=now)
            stored = 0
            for start in range(0, len(events), BATCH):
                body = json.dumps({"events": events[start:start + BATCH]}).encode()
                typed, raw = batch_decode(body)
                valid, rejected = events_validate(typed=typed, raw=raw)
                if rejected:
                    self.stderr.write(f"warning: {len(rejected)} demo events rejected: {rejected[:2]}")
                result = events_ingest(api_key=key, events=valid, rejected=rejected)
                if result.batch_id is not None:
                    # Eager mode has processed it on commit already; then this is a no-op (idempotent).
                    stored += batch_process(batch_id=result.batch_id)
            total = TraceEvent.objects.for_org(org).count()
            self.stdout.write(f"ingested {len(events)} demo events into {org.name} ({total} stored) "
                              f"at /o/{org.slug}/")
            demo_cap_set(org=org, now=now)
            found = insights_run(org=org, now=now)
            self.stdout.write(f"insights: {', '.join(sorted({i.kind for i in found})) or 'none'}")
        self.stdout.write(f"demo login: {email} {password}")

