"""Seed the report templates; on PostgreSQL, refuse changing a final report's content."""

from django.db import migrations

# A final report is never edited in place (services refuse; this makes the database
# refuse too). Archive bookkeeping and the critical-result times may still be set.
CREATE = """
CREATE OR REPLACE FUNCTION studies_report_final_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'a final report cannot be deleted';
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state
       OR NEW.findings IS DISTINCT FROM OLD.findings
       OR NEW.impression IS DISTINCT FROM OLD.impression
       OR NEW.critical IS DISTINCT FROM OLD.critical
       OR NEW.author_id IS DISTINCT FROM OLD.author_id
       OR NEW.study_id IS DISTINCT FROM OLD.study_id
       OR NEW.amends_id IS DISTINCT FROM OLD.amends_id
       OR NEW.signed_by_id IS DISTINCT FROM OLD.signed_by_id
       OR NEW.signed_at IS DISTINCT FROM OLD.signed_at
       OR NEW.content_sha256 IS DISTINCT FROM OLD.content_sha256
       OR NEW.signature IS DISTINCT FROM OLD.signature THEN
        RAISE EXCEPTION 'a final report is never edited in place: write an addendum';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER studies_report_final_frozen
    BEFORE UPDATE OR DELETE ON studies_report
    FOR EACH ROW WHEN (OLD.state = 'final')
    EXECUTE FUNCTION studies_report_final_frozen();
"""

DROP = """
DROP TRIGGER IF EXISTS studies_report_final_frozen ON studies_report;
DROP FUNCTION IF EXISTS studies_report_final_frozen();
"""


def seed(apps, schema_editor):
    from studies.reading.templates_seed import seed_report_templates

    seed_report_templates(apps.get_model("studies", "ReportTemplate"))


def guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def unguard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("studies", "0006_reading")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(guard, unguard),
    ]
