"""An endpoint grain (per provider and endpoint, the URL path of the call; hourly and daily) for the latency
and error breakdowns by endpoint, filled here from the events (they carry latency_bucket/ttft_bucket since
0011) with the fold's sums, maxima and count maps. The SQL is frozen here (not generated from
`ingestion.rollups`) so that later changes to the fold or the event columns cannot break this migration;
`manage.py rebuild_rollups` refolds the same rows from the same events.
"""

import django.db.models.deletion
from django.db import migrations, models

from ingestion import histograms

SUMS = {
    "calls": "count(*)",
    "errors": "sum(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END)",
    "unpriced_calls": "sum(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)",
    "input_tokens": "sum(input_tokens)",
    "output_tokens": "sum(output_tokens)",
    "cached_input_tokens": "sum(cached_input_tokens)",
    "cache_write_tokens": "sum(cache_write_tokens)",
    "reasoning_tokens": "sum(reasoning_tokens)",
    "cost_pico": "coalesce(sum(cost_pico), 0)",
    "latency_ms_sum": "coalesce(sum(latency_ms), 0)",
    "latency_calls": "count(latency_ms)",
    "ttft_calls": "count(ttft_ms)",
    "ttft_ms_sum": "coalesce(sum(ttft_ms), 0)",
    "status_error": "sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END)",
    "status_rate_limited": "sum(CASE WHEN status = 'rate_limited' THEN 1 ELSE 0 END)",
    "status_timeout": "sum(CASE WHEN status = 'timeout' THEN 1 ELSE 0 END)",
    "status_cancelled": "sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END)",
    "http_4xx": "sum(CASE WHEN http_status >= 400 AND http_status < 500 THEN 1 ELSE 0 END)",
    "http_5xx": "sum(CASE WHEN http_status >= 500 AND http_status < 600 THEN 1 ELSE 0 END)",
    "failed_cost_pico": "coalesce(sum(CASE WHEN status <> 'ok' THEN cost_pico END), 0)",
    "latency_ms_max": "max(latency_ms)",
    "ttft_ms_max": "max(ttft_ms)",
}
COUNTS = {
    "latency_hist": ("latency_bucket", "latency_bucket IS NOT NULL"),
    "ttft_hist": ("ttft_bucket", "ttft_bucket IS NOT NULL"),
    "http_codes": ("http_status", "http_status >= 400"),
}


def endpoints_backfill(apps, schema_editor):
    """INSERT … SELECT … GROUP BY over all events: the tables are new, so no conflict to merge."""
    connection = schema_editor.connection
    pg = connection.vendor == "postgresql"
    events = apps.get_model("ingestion", "TraceEvent")._meta.db_table
    if pg:
        dims_hash = "md5(concat_ws(chr(31), provider, endpoint))"
        counts = [f"CASE WHEN count(*) FILTER (WHERE {cond}) > 0 THEN (SELECT jsonb_object_agg(v, n) FROM "
                  f"(SELECT v, count(*) AS n FROM unnest(array_agg({col}) FILTER (WHERE {cond})) AS v GROUP BY v) c) END"
                  for col, cond in COUNTS.values()]
    else:
        connection.ensure_connection()
        connection.connection.create_aggregate("llmo_counts_agg", 1, histograms.SqliteCounts)
        dims_hash = "MD5(provider || char(31) || endpoint)"
        counts = [f"llmo_counts_agg(CASE WHEN {cond} THEN {col} END)" for col, cond in COUNTS.values()]
    for model, period in (("EndpointHourlyRollup", "hour"), ("EndpointDailyRollup", "day")):
        table = apps.get_model("ingestion", model)._meta.db_table
        if pg:
            floor = f"date_trunc('{period}', timestamp, 'UTC')"
        else:
            floor = ("substr(timestamp, 1, 13) || ':00:00'" if period == "hour"
                     else "substr(timestamp, 1, 10) || ' 00:00:00'")
        schema_editor.execute(
            f"INSERT INTO {table} (org_id, {period}, dims_hash, provider, endpoint, {', '.join(SUMS)}, "
            f"{', '.join(COUNTS)}) "
            f"SELECT org_id, {floor}, {dims_hash}, provider, endpoint, {', '.join(SUMS.values())}, {', '.join(counts)} "
            f"FROM {events} GROUP BY org_id, {floor}, provider, endpoint")



class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_invitation'),
        ('ingestion', '0013_price_discounts'),
    ]

    operations = [
        migrations.CreateModel(
            name='EndpointDailyRollup',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('dims_hash', models.CharField(max_length=40)),
                ('calls', models.BigIntegerField(default=0)),
                ('errors', models.BigIntegerField(default=0)),
                ('unpriced_calls', models.BigIntegerField(default=0)),
                ('input_tokens', models.BigIntegerField(default=0)),
                ('output_tokens', models.BigIntegerField(default=0)),
                ('cached_input_tokens', models.BigIntegerField(default=0)),
                ('cache_write_tokens', models.BigIntegerField(default=0)),
                ('reasoning_tokens', models.BigIntegerField(default=0)),
                ('cost_pico', models.BigIntegerField(default=0)),
                ('latency_ms_sum', models.FloatField(default=0)),
                ('latency_calls', models.BigIntegerField(default=0)),
                ('ttft_calls', models.BigIntegerField(default=0)),
                ('ttft_ms_sum', models.FloatField(default=0)),
                ('status_error', models.BigIntegerField(default=0)),
                ('status_rate_limited', models.BigIntegerField(default=0)),
                ('status_timeout', models.BigIntegerField(default=0)),
                ('status_cancelled', models.BigIntegerField(default=0)),
                ('http_4xx', models.BigIntegerField(default=0)),
                ('http_5xx', models.BigIntegerField(default=0)),
                ('failed_cost_pico', models.BigIntegerField(default=0)),
                ('latency_ms_max', models.FloatField(blank=True, null=True)),
                ('ttft_ms_max', models.FloatField(blank=True, null=True)),
                ('latency_hist', models.JSONField(blank=True, null=True)),
                ('ttft_hist', models.JSONField(blank=True, null=True)),
                ('http_codes', models.JSONField(blank=True, null=True)),
                ('provider', models.CharField(blank=True, max_length=64)),
                ('endpoint', models.CharField(blank=True, max_length=256)),
                ('day', models.DateTimeField()),
                ('org', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='accounts.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('org', 'day', 'dims_hash'), name='endpointdaily_unique_key')],
            },
        ),
        migrations.CreateModel(
            name='EndpointHourlyRollup',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('dims_hash', models.CharField(max_length=40)),
                ('calls', models.BigIntegerField(default=0)),
                ('errors', models.BigIntegerField(default=0)),
                ('unpriced_calls', models.BigIntegerField(default=0)),
                ('input_tokens', models.BigIntegerField(default=0)),
                ('output_tokens', models.BigIntegerField(default=0)),
                ('cached_input_tokens', models.BigIntegerField(default=0)),
                ('cache_write_tokens', models.BigIntegerField(default=0)),
                ('reasoning_tokens', models.BigIntegerField(default=0)),
                ('cost_pico', models.BigIntegerField(default=0)),
                ('latency_ms_sum', models.FloatField(default=0)),
                ('latency_calls', models.BigIntegerField(default=0)),
                ('ttft_calls', models.BigIntegerField(default=0)),
                ('ttft_ms_sum', models.FloatField(default=0)),
                ('status_error', models.BigIntegerField(default=0)),
                ('status_rate_limited', models.BigIntegerField(default=0)),
                ('status_timeout', models.BigIntegerField(default=0)),
                ('status_cancelled', models.BigIntegerField(default=0)),
                ('http_4xx', models.BigIntegerField(default=0)),
                ('http_5xx', models.BigIntegerField(default=0)),
                ('failed_cost_pico', models.BigIntegerField(default=0)),
                ('latency_ms_max', models.FloatField(blank=True, null=True)),
                ('ttft_ms_max', models.FloatField(blank=True, null=True)),
                ('latency_hist', models.JSONField(blank=True, null=True)),
                ('ttft_hist', models.JSONField(blank=True, null=True)),
                ('http_codes', models.JSONField(blank=True, null=True)),
                ('provider', models.CharField(blank=True, max_length=64)),
                ('endpoint', models.CharField(blank=True, max_length=256)),
                ('hour', models.DateTimeField()),
                ('org', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='accounts.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('org', 'hour', 'dims_hash'), name='endpointhourly_unique_key')],
            },
        ),
        migrations.RunPython(endpoints_backfill, migrations.RunPython.noop),
    ]
