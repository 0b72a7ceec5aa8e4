import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Planning 100,000 pages writes 100,000 tasks and slots: each index entry and each tally statement
# per row counts.
#
# Indexes: task.project and slot.page need none of their own (task_queue_idx and
# task_unique_dedupe_key start with project, both unique constraints on slots with page); anchor,
# other and assignee are NULL on every page and open task, so their indexes hold only the tasks
# that have one (a lookup by value, a cascade or a foreign-key check, implies NOT NULL). The old
# indexes are dropped by name, without AlterField: on PostgreSQL it would drop and re-add (and
# revalidate) each foreign key, on SQLite remake the table, and with it drop its tally triggers.
#
# Tally, on PostgreSQL (SQLite's row triggers are unchanged), in the functions planning calls:
# - each statement's test "some figure moved" was pushed down into its grouped subquery, where it
#   computed every aggregate a second time, correlated subqueries and all (OFFSET 0 keeps it out);
# - a slot statement looked for its pages' tasks with a hash join over every open task in the
#   database, for slots that planning inserts before their task: now one probe per page;
# - no sequential scans: each statement looks rows up by key, but its plan is made once per
#   session, and one made while a table was empty scans it once per row as it grows (the slot
#   statement above took 67 s for 100,000 slots, planned right after an ANALYZE of a new database).

tally = importlib.import_module("labeling.migrations.0015_project_tally")
shards = importlib.import_module("labeling.migrations.0017_tally_shards")

DROPPED_INDEXES = {
    "labeling_pageslot_page_id_06f49c18": ("labeling_pageslot", "page_id"),
    "labeling_task_project_id_89b7302a": ("labeling_task", "project_id"),
    "labeling_task_anchor_id_01cb322b": ("labeling_task", "anchor_id"),
    "labeling_task_other_id_789505d1": ("labeling_task", "other_id"),
    "labeling_task_assignee_id_b2fe9dc2": ("labeling_task", "assignee_id"),
}


def bump_once(select):
    return shards.shard_bump(f"{select} OFFSET 0")


def pageslot_figures(vendor, new, old):
    rows = tally.signed(["id", "page_id"], new, old)
    return [
        f"SELECT t.project_id AS pid, SUM(pg.n * {tally.missing(vendor, 't')}) AS grade_units "
        f"FROM (SELECT r.page_id, SUM(r.sign) AS n FROM ({rows}) AS r GROUP BY r.page_id) AS pg "
        f"CROSS JOIN LATERAL (SELECT * FROM labeling_task pt WHERE pt.page_id = pg.page_id "
        f"AND pt.status IN {tally.PENDING} AND pt.kind <> 'compare' OFFSET 0) AS t "
        f"GROUP BY t.project_id"
    ]


TABLES = {
    **tally.TABLES,
    "labeling_pageslot": (pageslot_figures, *tally.TABLES["labeling_pageslot"][1:]),
}


PLANNING_FUNCTIONS = [
    "labeling_task_tally_insert",
    "labeling_pageslot_tally_insert",
    "labeling_pageslot_tally_update",
    "labeling_pageslot_tally_delete",
]


def planning_functions(tables, bump, settings):
    """PLANNING_FUNCTIONS as made with `tables` and `bump`, replacing those in place (the
    triggers that call them stay as they are)."""
    statements, _ = tally.postgresql_triggers(tables, bump)
    made = {
        name: statement
        for name in PLANNING_FUNCTIONS
        for statement in statements
        if statement.startswith(f"CREATE FUNCTION {name}()")
    }
    assert list(made) == PLANNING_FUNCTIONS and all("SET jit = off AS" in s for s in made.values())
    return [
        statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(
            "SET jit = off AS", f"SET jit = off{settings} AS", 1
        )
        for statement in made.values()
    ]


def replace_tally_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in planning_functions(TABLES, bump_once, " SET enable_seqscan = off"):
            schema_editor.execute(statement)


def restore_tally_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # CREATE OR REPLACE sets every setting anew: enable_seqscan goes.
        for statement in planning_functions(tally.TABLES, shards.shard_bump, ""):
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0017_tally_shards"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("anchor__isnull", False)),
                fields=["anchor"],
                name="task_anchor_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("other__isnull", False)),
                fields=["other"],
                name="task_other_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("assignee__isnull", False)),
                fields=["assignee"],
                name="task_assignee_idx",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {name}",
                    reverse_sql=f"CREATE INDEX {name} ON {table} ({column})",
                )
                for name, (table, column) in DROPPED_INDEXES.items()
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="pageslot",
                    name="page",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="slots",
                        to="labeling.candidatepage",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="anchor",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="anchor_tasks",
                        to="labeling.item",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="assignee",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="leased_tasks",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="other",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="other_tasks",
                        to="labeling.item",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tasks",
                        to="labeling.project",
                    ),
                ),
            ],
        ),
        migrations.RunPython(replace_tally_functions, restore_tally_functions),
    ]
