"""OTLP resolution writes less: `OtlpSpan.org` loses its database foreign key, and `OtlpResponseKey` goes.

- `OtlpSpan` rows are transient (pruned a day after they arrive) and always written with their batch's org; the
  deferred foreign-key check each row fired at its group's commit was ~20 µs a span. Django still cascades an
  organisation's deletion to them.
- A later span of a provider response now takes its timestamp from the response's stored event (one read of
  the events table, under the org's resolution lock: `otlp_services._response_times_adopt`) instead of a key
  row written for every call. Backwards, the table is recreated and refilled from the stored events (each
  response event id with its earliest timestamp), so the older code finds every response counted so far.
"""

import django.db.models.deletion
from django.db import migrations, models


def _keys_refill(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute('INSERT INTO ingestion_otlpresponsekey (org_id, event_id, "timestamp") '
                       'SELECT org_id, event_id, min("timestamp") FROM ingestion_traceevent '
                       "WHERE event_id LIKE 'resp:%%' GROUP BY org_id, event_id")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_org_event_retention'),
        ('ingestion', '0017_packed_histograms'),
    ]

    operations = [
        migrations.AlterField(
            model_name='otlpspan',
            name='org',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    to='accounts.organization'),
        ),
        migrations.RunPython(migrations.RunPython.noop, _keys_refill),  # backwards: after the table is back
        migrations.DeleteModel(
            name='OtlpResponseKey',
        ),
    ]
