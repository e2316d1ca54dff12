"""`manage.py sync_prices`: the genai-prices registry → global ModelPrice rows, offline and idempotent."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ingestion.price_services import prices_sync


class Command(BaseCommand):
    help = ("Load the price registry shipped in the genai-prices package into the global prices "
            "(source 'genai-prices'). Offline and idempotent; manual rows and org overrides are never touched.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")

    def handle(self, *args, dry_run: bool = False, verbosity: int = 1, **options):
        result = prices_sync(dry_run=dry_run)
        if verbosity >= 2:
            for provider, model_id, reason in result.skipped:
                self.stderr.write(f"skipped {provider}/{model_id}: {reason}")
        if verbosity >= 1 and (result.skipped or result.rounded or result.kept_manual):
            self.stderr.write(
                f"genai-prices {result.version}: {len(result.skipped)} models skipped (a price key no unit defines), "
                f"{result.rounded} rows with prices rounded to a whole pico-USD per unit, {result.kept_manual} rules "
                f"left to manual rows ({result.seconds:.1f}s)"
            )
        prefix = "sync_prices (dry run)" if dry_run else "sync_prices"
        self.stdout.write(
            f"{prefix}: {result.total} prices (created {result.created}, updated {result.updated}, "
            f"removed {result.removed}) across {result.providers} providers; {result.unit_prices} unit prices, "
            f"{result.variants} variants, {result.time_windows} time windows, {result.tiered} tiered rows"
        )
