"""On PostgreSQL, refuse UPDATE and DELETE on the audit table at the database itself."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION regional_cloud_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER regional_cloud_auditevent_no_change
    BEFORE UPDATE OR DELETE ON regional_cloud_auditevent
    FOR EACH ROW EXECUTE FUNCTION regional_cloud_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS regional_cloud_auditevent_no_change ON regional_cloud_auditevent;
DROP FUNCTION IF EXISTS regional_cloud_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("regional_cloud", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
