"""python manage.py explain_claim --tasks 1000000: EXPLAIN ANALYZE of the claim on PostgreSQL.

Inserts a project with `--tasks` grade_page tasks (every tenth done, priorities 0-2) in one
INSERT ... SELECT generate_series, then prints the plan of the claim's UPDATE (rolled back, so
nothing is leased) and the time of `claim_next_task` and `annotator_progress`. PostgreSQL only;
the project stays in the configured database: point DATABASE_URL at a scratch database.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from labeling import assignment
from labeling.models import CandidatePage, Item, Project, Query, TaskStatus

MAX_TASKS = 10_000_000


class Command(BaseCommand):
    help = "EXPLAIN ANALYZE of the claim query on a project of many tasks (PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=1_000_000)

    def handle(self, *args, tasks: int, **options):
        if connection.vendor != "postgresql":
            raise CommandError("explain_claim needs PostgreSQL: set DATABASE_URL.")
        if not 1 <= tasks <= MAX_TASKS:
            raise CommandError(f"--tasks 1..{MAX_TASKS}.")
        stamp = int(time.time())
        project = Project.objects.create(slug=f"explain-claim-{stamp}", name="Claim plan")
        query = Query.objects.create(project=project, external_id="q", text="query")
        Item.objects.create(project=project, query=query, external_id="i", modality="text")
        page = CandidatePage.objects.create(project=project, query=query)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO labeling_task (project_id, kind, status, page_id, reason, priority, "
                "judgments_required, created_at) SELECT %s, 'grade_page', CASE WHEN g %% 10 = 0 "
                "THEN 'done' ELSE 'open' END, %s, '', g %% 3, 1, now() "
                "FROM generate_series(1, %s) AS g",
                [project.pk, page.pk, tasks],
            )
            cursor.execute("ANALYZE labeling_task")
        self.stdout.write(f"{tasks} tasks inserted in {time.perf_counter() - started:.1f} s")
        annotator = get_user_model().objects.create_user(f"{project.slug}-a")
        now = timezone.now()
        sql, params = assignment.claim_statement(
            annotator=annotator, project=project, now=now, expires=now + timedelta(seconds=600)
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
            self.stdout.write("\n".join(row[0] for row in cursor.fetchall()))
            transaction.set_rollback(True)
        for _ in range(3):
            started = time.perf_counter()
            task = assignment.claim_next_task(annotator=annotator, project=project)
            claim_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            progress = assignment.annotator_progress(annotator=annotator, project=project)
            progress_ms = (time.perf_counter() - started) * 1000
            assert task is not None and task.status == TaskStatus.LEASED
            self.stdout.write(
                f"claim_next_task {claim_ms:.1f} ms, annotator_progress {progress_ms:.1f} ms "
                f"({progress.remaining_label} remaining)"
            )
