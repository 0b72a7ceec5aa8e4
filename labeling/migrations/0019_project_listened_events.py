# Project.listened_events. On SQLite the column is added in place (ALTER TABLE ... ADD COLUMN):
# Django would rebuild the table to add a column with a default, and the rebuild drops the
# table's triggers (the tally's: a new project would get no tally row).

from django.db import migrations, models


def field():
    added = models.JSONField(blank=True, default=list, editable=False)
    added.set_attributes_from_name("listened_events")
    return added


def add_column(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(
            "ALTER TABLE labeling_project ADD COLUMN listened_events text NOT NULL DEFAULT '[]' "
            'CHECK ((JSON_VALID("listened_events") OR "listened_events" IS NULL))'
        )
    else:
        schema_editor.add_field(apps.get_model("labeling", "Project"), field())


def drop_column(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("ALTER TABLE labeling_project DROP COLUMN listened_events")
    else:
        schema_editor.remove_field(apps.get_model("labeling", "Project"), field())


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0018_fewer_index_entries_per_task"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="project",
                    name="listened_events",
                    field=models.JSONField(blank=True, default=list, editable=False),
                ),
            ],
            database_operations=[migrations.RunPython(add_column, drop_column)],
        ),
    ]
