"""`manage.py events_prune [--dry-run] [--now ISO]`: enforce every organisation's raw-event retention."""

from __future__ import annotations

from datetime import datetime, timezone

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone as dj_timezone

from ingestion.retention import events_prune


class Command(BaseCommand):
    help = ("Remove raw events older than their organisation's retention (Organization.event_retention_days, else "
            "LLMOBSERVE_EVENT_RETENTION_DAYS). PostgreSQL: creates the monthly partitions ahead, drops the months "
            "past every org's retention, deletes the rest in chunks; SQLite: deletes in chunks. Rollups, run "
            "summaries and insights are kept. The daily beat task runs the same.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
        parser.add_argument("--now", metavar="ISO", help="prune as of this instant (ISO 8601, UTC if no offset)")

    def handle(self, *args, dry_run: bool = False, now: str | None = None, **options):
        at = dj_timezone.now()
        if now:
            try:
                at = datetime.fromisoformat(now.replace("Z", "+00:00"))
            except ValueError as exc:
                raise CommandError(f"--now must be an ISO 8601 instant, not {now!r}") from exc
            if at.tzinfo is None:
                at = at.replace(tzinfo=timezone.utc)
        for line in events_prune(now=at, dry_run=dry_run).lines():
            self.stdout.write(line)
