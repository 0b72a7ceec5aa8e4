# Concurrent submits to one project no longer queue on its tally row (PostgreSQL): the triggers of
# migration 0015 add each figure's change to the writing session's shard of the tally
# (labeling_tallyshard, one row per project and mod(pg_backend_pid(), SHARDS)), an upsert, instead of
# updating the project's one row, which every submit held locked from its first write until its
# commit. Readers add the shards to the project's row (labeling.tally). SQLite keeps its triggers.

import importlib

from django.db import migrations, models

tally = importlib.import_module("labeling.migrations.0015_project_tally")

SHARDS = 16  # more than the connections a server keeps (2 workers x 4 threads, the worker)
SHARD = "labeling_tallyshard"


def shard_bump(select):
    """An upsert adding the figures of `select` (pid and some of FIGURES) to the session's shard."""
    names = [n for n in tally.FIGURES if f"AS {n} " in select or f"AS {n}," in select]
    values = [f"d.{n}" if n in names else "0" for n in tally.FIGURES]  # no database defaults
    return (
        f"INSERT INTO {SHARD} AS s (project_id, shard, {', '.join(tally.FIGURES)}) "
        f"SELECT d.pid, mod(pg_backend_pid(), {SHARDS}), {', '.join(values)} "
        f"FROM ({select}) AS d WHERE d.pid IS NOT NULL AND ("
        + " OR ".join(f"d.{n} <> 0" for n in names)
        + ") ON CONFLICT (project_id, shard) DO UPDATE SET "
        + ", ".join(f"{n} = s.{n} + EXCLUDED.{n}" for n in names)
    )


def functions(bump):
    """0015's trigger functions written with `bump`, replacing the ones in place."""
    return [
        statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        for statement in tally.postgresql_triggers(bump=bump)[0]
        if statement.startswith("CREATE FUNCTION")
    ]


SHARDS_OF_DELETED_PROJECT = (
    "CREATE FUNCTION labeling_project_tally_shards_delete() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN DELETE FROM {SHARD} WHERE project_id = OLD.id; RETURN NULL; END $$",
    "CREATE TRIGGER labeling_project_tally_shards_delete AFTER DELETE ON labeling_project "
    "FOR EACH ROW EXECUTE FUNCTION labeling_project_tally_shards_delete()",
)
DROP_SHARDS_OF_DELETED_PROJECT = (
    "DROP TRIGGER IF EXISTS labeling_project_tally_shards_delete ON labeling_project",
    "DROP FUNCTION IF EXISTS labeling_project_tally_shards_delete()",
)


def to_shards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in [*functions(shard_bump), *SHARDS_OF_DELETED_PROJECT]:
        schema_editor.execute(statement)


def to_project_rows(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in [*DROP_SHARDS_OF_DELETED_PROJECT, *functions(tally.bump)]:
        schema_editor.execute(statement)
    # What the shards hold goes back to the projects' rows.
    figures = ", ".join(f"{n} = t.{n} + s.{n}" for n in tally.FIGURES)
    sums = ", ".join(f"SUM({n}) AS {n}" for n in tally.FIGURES)
    schema_editor.execute(
        f"UPDATE labeling_projecttally AS t SET {figures} FROM (SELECT project_id, {sums} "
        f"FROM {SHARD} GROUP BY project_id) AS s WHERE t.project_id = s.project_id"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0015_project_tally"),
    ]

    operations = [
        migrations.CreateModel(
            name="TallyShard",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("spent_units", models.BigIntegerField(default=0)),
                ("compare_units", models.BigIntegerField(default=0)),
                ("grade_units", models.BigIntegerField(default=0)),
                ("pending_tasks", models.BigIntegerField(default=0)),
                ("items", models.BigIntegerField(default=0)),
                ("train_items", models.BigIntegerField(default=0)),
                ("graded_train_items", models.BigIntegerField(default=0)),
                ("project_id", models.BigIntegerField()),
                ("shard", models.SmallIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("project_id", "shard"), name="tally_shard_uniq")
                ],
            },
        ),
        migrations.RunPython(to_shards, to_project_rows),
    ]
