"""PostgreSQL: raw batch payloads (~500 KB of JSON per 1,000 events) are TOAST-compressed with lz4 instead of
pglz. The request writes one payload per POST: pglz cost ~30 ms of PostgreSQL CPU per 1,000-event batch, lz4
about half (docs/scaling.md § What moved the figure). Rows already stored keep pglz (both are read
transparently). A server built without lz4 keeps pglz; SQLite has no TOAST."""

from django.db import migrations

TABLE = "ingestion_rawbatch"


def _lz4_available(cursor) -> bool:
    cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
    row = cursor.fetchone()
    return bool(row and row[0])


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _lz4_available(cursor):
            cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN payload SET COMPRESSION lz4")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN payload SET COMPRESSION pglz")


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0014_endpoint_rollups")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
