"""Latency and TTFT histograms packed in one `numeric` on PostgreSQL (`ingestion.histograms`, module docstring).

PostgreSQL: every histogram column of the rollup tables becomes `numeric`, each row's jsonb count map converted
in place (sum(count · 10**(WIDTH·index))), and `llmo_counts_merge(numeric, numeric)` is created for the fold's
ON CONFLICT merge. Backwards, each packed value is cut back into its {index: count} map — the same jsonb the
fold wrote before. SQLite keeps JSON count maps: nothing changes there but the field class.
"""

from django.db import migrations

from ingestion import histograms

TABLES = ("AgentHourlyRollup", "AgentDailyRollup", "CustomerHourlyRollup", "CustomerDailyRollup",
          "SectionHourlyRollup", "SectionDailyRollup", "EndpointHourlyRollup", "EndpointDailyRollup")
COLUMNS = ("latency_hist", "ttft_hist")
W = histograms.WIDTH

# Conversions, only for this migration (a column's USING clause cannot hold a subquery).
PACK = f"""CREATE FUNCTION pg_temp.llmo_hist_pack(m jsonb) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
    SELECT sum((value || 'e' || {W} * key::int)::numeric) FROM jsonb_each_text(m) $$"""
# Backwards: the digits cut into WIDTH-digit counts by one regexp pass (bucket = chunks - ordinality, the
# leftmost chunk is the highest bucket); substr() per chunk would walk the text from its start each time.
UNPACK = f"""CREATE FUNCTION pg_temp.llmo_hist_unpack(p numeric) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_object_agg(c.n - m.i, m.a[1]::bigint)
    FROM (SELECT (length(p::text) + {W - 1}) / {W} AS n) c,
         regexp_matches(lpad(p::text, {W} * c.n, '0'), '\\d{{{W}}}', 'g') WITH ORDINALITY AS m(a, i)
    WHERE m.a[1]::bigint > 0 $$"""


def _alter(apps, schema_editor, *, to_type: str, function: str, create: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(create)
    for name in TABLES:
        table = apps.get_model("ingestion", name)._meta.db_table
        schema_editor.execute(f"ALTER TABLE {table} " + ", ".join(
            f"ALTER COLUMN {c} TYPE {to_type} USING pg_temp.{function}({c})" for c in COLUMNS))
    schema_editor.execute(f"DROP FUNCTION pg_temp.{function}")


def histograms_pack(apps, schema_editor):
    _alter(apps, schema_editor, to_type="numeric", function="llmo_hist_pack", create=PACK)
    if schema_editor.connection.vendor == "postgresql":
        for sql in histograms.PG_PACKED_FUNCTIONS:
            schema_editor.execute(sql)


def histograms_unpack(apps, schema_editor):
    _alter(apps, schema_editor, to_type="jsonb", function="llmo_hist_unpack", create=UNPACK)
    if schema_editor.connection.vendor == "postgresql":
        for sql in histograms.PG_PACKED_FUNCTIONS_DROP:
            schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ("ingestion", "0016_traceevent_partitions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name=name.lower(), name=column,
                                      field=histograms.HistogramField(blank=True, null=True))
                for name in TABLES for column in COLUMNS
            ],
            database_operations=[migrations.RunPython(histograms_pack, histograms_unpack)],
        ),
    ]
