"""`manage.py sync_prices`: the genai-prices registry → global ModelPrice rows, offline and idempotent."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from ingestion.models import ModelPrice
from ingestion.price_registry import SOURCE, registry_load
from ingestion.pricing import prices_changed

FIELDS = ["display_name", "input_mtok", "output_mtok", "cached_input_mtok", "cache_write_mtok",
          "cache_write_1h_mtok", "tiers", "per_request_usd", "per_unit_usd", "unit_field"]


class Command(BaseCommand):
    help = ("Load the price registry shipped in the genai-prices package into the global prices "
            "(source 'genai-prices'). Offline and idempotent; manual rows and org overrides are never touched.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")

    def handle(self, *args, dry_run: bool = False, verbosity: int = 1, **options):
        started = time.monotonic()
        now = timezone.now()
        registry = registry_load()
        wanted = {row.key: row for row in registry.rows}

        globals_ = ModelPrice.objects.unscoped().filter(org__isnull=True)
        synced = {(p.provider, p.match_kind, p.model_match, p.effective_from): p
                  for p in globals_.filter(source=SOURCE)}
        manual_keys = set(globals_.exclude(source=SOURCE)
                          .values_list("provider", "match_kind", "model_match", "effective_from"))

        to_create, to_update, kept_manual = [], [], 0
        for key, row in wanted.items():
            if key in manual_keys:
                kept_manual += 1  # an analyst's own global row for this rule wins
                continue
            values = row.values()
            existing = synced.get(key)
            if existing is None:
                to_create.append(ModelPrice(provider=row.provider, match_kind=row.match_kind,
                                            model_match=row.model_match, effective_from=row.effective_from,
                                            source=SOURCE, **values))
            elif any(getattr(existing, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(existing, name, value)
                existing.updated_at = now  # bulk_update does not apply auto_now
                to_update.append(existing)
        stale_ids = [p.pk for key, p in synced.items() if key not in wanted or key in manual_keys]

        if not dry_run:
            with transaction.atomic():
                ModelPrice.objects.unscoped().filter(pk__in=stale_ids).delete()
                ModelPrice.objects.unscoped().bulk_create(to_create, batch_size=500)
                ModelPrice.objects.unscoped().bulk_update(to_update, FIELDS + ["updated_at"], batch_size=500)
                prices_changed()

        total = len(wanted) - kept_manual
        rounded = sum(1 for r in registry.rows if r.rounded)
        if verbosity >= 2:
            for provider, model_id, reason in registry.skipped:
                self.stderr.write(f"skipped {provider}/{model_id}: {reason}")
        if verbosity >= 1 and (registry.skipped or rounded or kept_manual):
            self.stderr.write(
                f"genai-prices {registry.version}: {len(registry.skipped)} models skipped (priced only in audio hours, characters or pages), "
                f"{rounded} prices rounded to 6 decimals, {kept_manual} rules left to manual rows "
                f"({time.monotonic() - started:.1f}s)"
            )
        prefix = "sync_prices (dry run)" if dry_run else "sync_prices"
        self.stdout.write(
            f"{prefix}: {total} prices (created {len(to_create)}, updated {len(to_update)}, "
            f"removed {len(stale_ids)}) across {len(registry.providers)} providers"
        )
