# Less tally work per judgment on PostgreSQL (SQLite's row triggers are unchanged), in the two
# functions every annotator's next task and submit run:
# - a task update that moves no figure returns at once: a claim (open -> leased) or a renewed lease
#   used to run the whole statement over the transition tables to find nothing to add;
# - a new judgment adds its figures (spent, pending units, graded training items) to the session's
#   shard in one upsert, not one per figure: the same shard row was updated twice per judgment.

import importlib

from django.db import migrations

tally = importlib.import_module("labeling.migrations.0015_project_tally")
shards = importlib.import_module("labeling.migrations.0017_tally_shards")

TASK_UPDATE = "labeling_task_tally_update"
JUDGMENT_INSERT = "labeling_judgment_tally_insert"


def _names(select):
    return [n for n in tally.FIGURES if f"AS {n} " in select or f"AS {n}," in select]


def shard_bump_all(selects):
    """One upsert adding the figures of every one of `selects` (each a pid and some of FIGURES,
    as shards.shard_bump takes) to the session's shard; nothing when no figure moved."""
    moved = list(dict.fromkeys(n for select in selects for n in _names(select)))
    parts = [
        "SELECT d.pid, "
        + ", ".join(f"d.{n}" if n in _names(select) else "0" for n in tally.FIGURES)
        # OFFSET 0: each SELECT's aggregates are computed once, not again in the test below.
        + f" FROM ({select} OFFSET 0) AS d"
        for select in selects
    ]
    sums = {n: f"SUM(u.{n})" if n in moved else "0" for n in tally.FIGURES}
    return (
        f"INSERT INTO {shards.SHARD} AS s (project_id, shard, {', '.join(tally.FIGURES)}) "
        f"SELECT u.pid, mod(pg_backend_pid(), {shards.SHARDS}), {', '.join(sums.values())} "
        f"FROM ({' UNION ALL '.join(parts)}) AS u (pid, {', '.join(tally.FIGURES)}) "
        f"WHERE u.pid IS NOT NULL GROUP BY u.pid HAVING "
        + " OR ".join(f"{sums[n]} <> 0" for n in moved)
        + " ON CONFLICT (project_id, shard) DO UPDATE SET "
        + ", ".join(f"{n} = s.{n} + EXCLUDED.{n}" for n in moved)
    )


def _function(name, body):
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$ "
        f"BEGIN {body} RETURN NULL; END $$"
    )


def leaner_functions():
    figures, columns, moves = tally.TABLES["labeling_task"]
    test = tally.changed(moves, "o", "n")
    new = f"(SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE {test})"
    old = f"(SELECT o.* FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {test})"
    task_update = (
        f"IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {test}) "
        "THEN RETURN NULL; END IF; "
        + " ".join(f"{shards.shard_bump(select)};" for select in figures("postgresql", new, old))
    )
    figures, columns, _ = tally.TABLES["labeling_judgment"]
    selects = figures("postgresql", "new_rows", tally.empty("labeling_judgment", columns))
    return [
        _function(TASK_UPDATE, task_update),
        _function(JUDGMENT_INSERT, f"{shard_bump_all(selects)};"),
    ]


def earlier_functions():
    return [
        statement
        for statement in shards.functions(shards.shard_bump)
        if statement.startswith((f"CREATE OR REPLACE FUNCTION {TASK_UPDATE}()",
                                 f"CREATE OR REPLACE FUNCTION {JUDGMENT_INSERT}()"))
    ]  # fmt: skip


def replace(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in leaner_functions():
            schema_editor.execute(statement)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        restored = earlier_functions()
        assert len(restored) == 2
        for statement in restored:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0019_project_listened_events"),
    ]

    operations = [
        migrations.RunPython(replace, restore),
    ]
