"""Back-fill the empty agent facet ("the run has a call without a section label") that ingestion now writes, so
the runs list's `untracked=1` filter (the overview's Untracked row) also finds runs ingested before it."""

from django.db import migrations

BATCH = 5000


def backfill(apps, schema_editor):
    TraceEvent = apps.get_model("ingestion", "TraceEvent")
    RunFacet = apps.get_model("ingestion", "RunFacet")
    pairs = (TraceEvent.objects.filter(section_path="").values_list("org_id", "run_id").distinct().order_by())
    batch = []
    for org_id, run_id in pairs.iterator(chunk_size=BATCH):
        batch.append(RunFacet(org_id=org_id, run_id=run_id, kind="agent", value=""))
        if len(batch) >= BATCH:
            RunFacet.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    if batch:
        RunFacet.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_insights_alerts"),
        ("ingestion", "0006_rawbatch_quarantine"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
