"""Empty the payload of every raw batch already processed: their events are stored, and the raw copy of the calls
must not outlive the events' retention (services.PROCESSED_PAYLOAD does it for new batches as they are processed).

Chunks of 2,000 batches, each its own transaction (the migration is not atomic), so a large table is not held in
one long transaction beside the running workers. Re-running it finds nothing left to clear."""

from django.db import migrations, transaction

CHUNK = 2000


def clear_processed_payloads(apps, schema_editor):
    rows = apps.get_model("ingestion", "RawBatch")._base_manager  # every org's rows (a plain manager)
    done = rows.filter(processed_at__isnull=False).exclude(payload=b"")
    last = 0
    while True:
        with transaction.atomic(using=schema_editor.connection.alias):
            pks = list(done.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:CHUNK])
            if not pks:
                return
            rows.filter(pk__in=pks).update(payload=b"")
        last = pks[-1]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("ingestion", "0022_otlp_trace_hierarchy")]

    operations = [migrations.RunPython(clear_processed_payloads, migrations.RunPython.noop)]
