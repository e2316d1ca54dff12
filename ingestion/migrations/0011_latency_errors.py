"""Latency histograms and error counts in the rollup tables, the bucket indexes on events, and a section
grain (per section path, hourly and daily) for the breakdowns by section.

Every rollup table gains the error sums; the coarse grains (agent, customer, section) also the latency
and TTFT histograms, maxima and HTTP code counts. Existing events get their bucket indexes here, and the
section tables are filled from the fine-grain rollups' sums. Older rollup rows keep empty histograms and
zero error counts until `manage.py rebuild_rollups` refolds them from the events (run it once after
migrating).
"""

import django.db.models.deletion
from django.db import migrations, models

from ingestion import histograms

OLD_SUMS = ("calls", "errors", "unpriced_calls", "input_tokens", "output_tokens", "cached_input_tokens",
            "cache_write_tokens", "reasoning_tokens", "cost_pico", "latency_ms_sum")
NEW_ZEROS = ("latency_calls", "ttft_calls", "ttft_ms_sum", "status_error", "status_rate_limited", "status_timeout",
             "status_cancelled", "http_4xx", "http_5xx", "failed_cost_pico")


def functions_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in histograms.PG_FUNCTIONS:
            schema_editor.execute(sql)


def functions_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in histograms.PG_FUNCTIONS_DROP:
            schema_editor.execute(sql)


def buckets_backfill(apps, schema_editor):
    TraceEvent = apps.get_model("ingestion", "TraceEvent")
    qs = TraceEvent._base_manager.filter(models.Q(latency_ms__isnull=False) | models.Q(ttft_ms__isnull=False))
    last = 0
    while True:
        chunk = list(qs.filter(pk__gt=last).order_by("pk").values_list("pk", "latency_ms", "ttft_ms")[:5000])
        if not chunk:
            return
        rows = [TraceEvent(pk=pk, latency_bucket=histograms.bucket_of(lat), ttft_bucket=histograms.bucket_of(ttft))
                for pk, lat, ttft in chunk]
        TraceEvent._base_manager.bulk_update(rows, ["latency_bucket", "ttft_bucket"], batch_size=1000)
        last = chunk[-1][0]


def sections_backfill(apps, schema_editor):
    """The section tables from the fine-grain rollups (the same dims_hash as the fold's: MD5 of the path)."""
    pg = schema_editor.connection.vendor == "postgresql"
    sums = ", ".join(f"sum({c})" for c in OLD_SUMS)
    for fine, section, period in (("HourlyRollup", "SectionHourlyRollup", "hour"),
                                  ("DailyRollup", "SectionDailyRollup", "day")):
        src = apps.get_model("ingestion", fine)._meta.db_table
        dst = apps.get_model("ingestion", section)._meta.db_table
        schema_editor.execute(
            f"INSERT INTO {dst} (org_id, {period}, dims_hash, section_path, {', '.join(OLD_SUMS + NEW_ZEROS)}) "
            f"SELECT org_id, {period}, {'md5' if pg else 'MD5'}(section_path), section_path, {sums}, "
            f"{', '.join('0' for _ in NEW_ZEROS)} "
            f"FROM {src} GROUP BY org_id, {period}, section_path")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_invitation'),
        ('ingestion', '0010_otlp'),
    ]

    operations = [
        migrations.AddField(
            model_name='agentdailyrollup',
            name='failed_cost_pico',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='http_4xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='http_5xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='http_codes',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='latency_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='latency_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='latency_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='status_cancelled',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='status_error',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='status_rate_limited',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='status_timeout',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='ttft_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='ttft_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='ttft_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agentdailyrollup',
            name='ttft_ms_sum',
            field=models.FloatField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='failed_cost_pico',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='http_4xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='http_5xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='http_codes',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='latency_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='latency_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='latency_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='status_cancelled',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='status_error',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='status_rate_limited',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='status_timeout',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='ttft_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='ttft_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='ttft_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='agenthourlyrollup',
            name='ttft_ms_sum',
            field=models.FloatField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='failed_cost_pico',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='http_4xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='http_5xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='http_codes',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='latency_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='latency_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='latency_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='status_cancelled',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='status_error',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='status_rate_limited',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='status_timeout',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='ttft_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='ttft_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='ttft_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerdailyrollup',
            name='ttft_ms_sum',
            field=models.FloatField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='failed_cost_pico',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='http_4xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='http_5xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='http_codes',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='latency_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='latency_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='latency_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='status_cancelled',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='status_error',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='status_rate_limited',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='status_timeout',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='ttft_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='ttft_hist',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='ttft_ms_max',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='customerhourlyrollup',
            name='ttft_ms_sum',
            field=models.FloatField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='failed_cost_pico',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='http_4xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='http_5xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='latency_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='status_cancelled',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='status_error',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='status_rate_limited',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='status_timeout',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='ttft_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyrollup',
            name='ttft_ms_sum',
            field=models.FloatField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='failed_cost_pico',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='http_4xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='http_5xx',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='latency_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='status_cancelled',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='status_error',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='status_rate_limited',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='status_timeout',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='ttft_calls',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='hourlyrollup',
            name='ttft_ms_sum',
            field=models.FloatField(default=0),
        ),
        migrations.AddField(
            model_name='traceevent',
            name='latency_bucket',
            field=models.SmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='traceevent',
            name='ttft_bucket',
            field=models.SmallIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='SectionDailyRollup',
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
                ('section_path', models.CharField(blank=True, max_length=1024)),
                ('day', models.DateTimeField()),
                ('org', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='accounts.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('org', 'day', 'dims_hash'), name='sectiondaily_unique_key')],
            },
        ),
        migrations.CreateModel(
            name='SectionHourlyRollup',
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
                ('section_path', models.CharField(blank=True, max_length=1024)),
                ('hour', models.DateTimeField()),
                ('org', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='accounts.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('org', 'hour', 'dims_hash'), name='sectionhourly_unique_key')],
            },
        ),
        migrations.RunPython(functions_create, functions_drop),
        migrations.RunPython(buckets_backfill, migrations.RunPython.noop),
        migrations.RunPython(sections_backfill, migrations.RunPython.noop),
    ]
