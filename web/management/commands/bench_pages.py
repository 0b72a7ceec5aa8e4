"""python manage.py bench_pages --items 1000000: server time of every page and API view on a
large generated project, as JSON.

Bulk-inserts a project of `--items` items (`--items-per-query` per query), plans its pages with the
real planner (`create_page_tasks`, strategy `full`: every item on a page, so every page is a task;
timed by itself under "planning", and on stderr),
judges `--judged` of the tasks (bulk, as if annotators had), then requests each page through
Django's test client (in process: server time, no network) `--repeat` times after one warm-up
request, and prints the median and the number of SQL statements of each. The project stays in
the configured database: point PAGEWISE_VAR_DIR (SQLite) or DATABASE_URL at a scratch database.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from active_selection.services import create_page_tasks
from labeling.benchmarks import bulk_queries_and_items, refresh_planner_statistics
from labeling.models import (
    ItemGrade,
    Judgment,
    Membership,
    PageSlot,
    Project,
    Role,
    Task,
    TaskKind,
    TaskStatus,
)

MAX_ITEMS = 5_000_000


def pages_to_time(slug: str) -> list[tuple[str, str, str, str]]:
    """(name, method, path, who) for every page and API view a user opens on a project."""
    return [
        ("home (lead)", "get", "/", "lead"),
        ("home (annotator)", "get", "/", "annotator"),
        ("api project list", "get", "/api/projects/", "lead"),
        ("api project detail", "get", f"/api/projects/{slug}/", "lead"),
        ("dashboard", "get", f"/projects/{slug}/dashboard/", "lead"),
        ("api dashboard", "get", f"/api/projects/{slug}/dashboard/", "lead"),
        ("settings", "get", f"/projects/{slug}/settings/", "lead"),
        ("api settings", "get", f"/api/projects/{slug}/settings/", "lead"),
        ("members", "get", f"/projects/{slug}/members/", "lead"),
        ("api members", "get", f"/api/projects/{slug}/members/", "lead"),
        ("import", "get", f"/projects/{slug}/import/", "lead"),
        ("review", "get", f"/projects/{slug}/review/", "lead"),
        ("exports", "get", f"/projects/{slug}/exports/", "scientist"),
        ("api judgments", "get", f"/api/projects/{slug}/judgments/", "scientist"),
        ("api versions", "get", f"/api/projects/{slug}/versions/", "scientist"),
        ("annotate", "get", f"/projects/{slug}/annotate/", "annotator"),
        ("api next task", "post", f"/api/projects/{slug}/tasks/next/", "annotator"),
    ]


def judge_tasks(*, project: Project, annotators: list, count: int) -> int:
    """Store `count` grade_page judgments (one per task, annotators in turn) and close the tasks."""
    tasks = list(
        Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE)
        .order_by("pk")
        .values_list("pk", "page_id")[:count]
    )
    slots: dict[int, list[int]] = {}
    for page_id, item_id in PageSlot.objects.filter(
        page_id__in=[page for _, page in tasks]
    ).values_list("page_id", "item_id"):
        slots.setdefault(page_id, []).append(item_id)
    judgments = Judgment.objects.bulk_create(
        [
            Judgment(
                task_id=task_id,
                project=project,
                annotator=annotators[i % len(annotators)],
                client_uuid=uuid.uuid4(),
                kind=TaskKind.GRADE_PAGE,
                cost=project.grade_cost * len(slots[page_id]),
                duration_ms=3000,
            )  # fmt: skip
            for i, (task_id, page_id) in enumerate(tasks)
        ],
        batch_size=2000,
    )
    ItemGrade.objects.bulk_create(
        [
            ItemGrade(judgment=judgment, item_id=item_id, grade=(judgment.pk + item_id) % 5)
            for judgment, (_, page_id) in zip(judgments, tasks, strict=True)
            for item_id in slots[page_id]
        ],
        batch_size=5000,
    )
    Task.objects.filter(pk__in=[pk for pk, _ in tasks]).update(status=TaskStatus.DONE)
    return len(judgments)


def time_planning(*, project: Project) -> dict:
    """create_page_tasks by itself: pages planned, wall and CPU seconds (CPU of this process: on
    SQLite the database's work too, on PostgreSQL only the client's), tasks per second."""
    started, cpu = time.perf_counter(), time.process_time()
    pages = create_page_tasks(project=project)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "pages": pages,
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "tasks_per_s": round(pages / seconds) if seconds else None,
    }


class Command(BaseCommand):
    help = "Server time of every page and API view on a large generated project (JSON)."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=100_000)
        parser.add_argument("--items-per-query", type=int, default=40)
        parser.add_argument("--page-size", type=int, default=10)
        parser.add_argument("--judged", type=int, default=2000, help="tasks judged beforehand")
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--json", dest="json_path", type=Path)
        parser.add_argument(
            "--project",
            help="time the pages of this project, made by an earlier run, instead of building one",
        )
        parser.add_argument(
            "--only", help="comma-separated page names to time (default: every page)"
        )

    def handle(self, *args, items, items_per_query, page_size, judged, repeat, json_path, **opts):
        if repeat < 1:
            raise CommandError("--repeat 1 or more.")
        if opts["project"]:
            project = Project.objects.filter(slug=opts["project"]).first()
            if project is None:
                raise CommandError(f"No project '{opts['project']}'.")
            figures = {"database": connection.vendor, "items": project.items.count()}
            users = {
                role: get_user_model().objects.get(username=f"{project.slug}-{role}")
                for role in ("lead", "annotator", "scientist")
            }
        else:
            project, figures, users = self.build(
                items=items, items_per_query=items_per_query, page_size=page_size, judged=judged
            )
        refresh_planner_statistics()
        only = {name.strip() for name in opts["only"].split(",")} if opts["only"] else None
        clients = {}
        for role, user in users.items():
            clients[role] = Client()
            clients[role].force_login(user)
        timings = {}
        with override_settings(ALLOWED_HOSTS=["testserver"]):
            for name, method, path, who in pages_to_time(project.slug):
                if only is not None and name not in only:
                    continue
                call = getattr(clients[who], method)
                call(path)  # warm-up: caches, the first lease
                runs, cpu, statements, status = [], [], 0, None
                for _ in range(repeat):
                    with CaptureQueriesContext(connection) as queries:
                        started, started_cpu = time.perf_counter(), time.process_time()
                        response = call(path)
                        runs.append((time.perf_counter() - started) * 1000)
                        cpu.append((time.process_time() - started_cpu) * 1000)
                    statements, status = len(queries), response.status_code
                timings[name] = {
                    "path": path,
                    "status": status,
                    "ms_median": round(statistics.median(runs), 1),
                    "ms_max": round(max(runs), 1),
                    "cpu_ms_median": round(statistics.median(cpu), 1),
                    "sql_statements": statements,
                }
        figures["pages"] = timings
        figures["slowest_page_ms"] = max(t["ms_median"] for t in timings.values())
        figures["project"] = project.slug
        text = json.dumps(figures, indent=2)
        self.stdout.write(text)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(text)
        failed = {name: t["status"] for name, t in timings.items() if t["status"] != 200}
        if failed:
            # A redirect (say, to https when DEBUG is off) is timed in microseconds: no figure.
            raise CommandError(
                f"These pages did not answer 200, so their times mean nothing: {failed} "
                "(with DEBUG=0 set SECURE_SSL_REDIRECT=0 and ALLOWED_HOSTS)."
            )

    def build(self, *, items, items_per_query, page_size, judged):
        """A new project of `items` items, planned, with `judged` tasks judged: (project, figures,
        users by role)."""
        if not 1 <= items <= MAX_ITEMS or not 1 <= items_per_query <= items:
            raise CommandError(f"--items 1..{MAX_ITEMS}, --items-per-query 1..items.")
        if not 2 <= page_size <= 100 or judged < 0:
            raise CommandError("--page-size 2..100, --judged 0 or more.")
        stamp = int(time.time())
        project = Project.objects.create(
            slug=f"bench-pages-{stamp}", name=f"Pages benchmark {stamp}", strategy="full",
            modalities=["text", "image"], page_size=page_size, grade_cost=Decimal("0.01"),
            budget=Decimal("9999999999"),
        )  # fmt: skip
        figures: dict = {"database": connection.vendor, "items": items}
        started = time.perf_counter()
        bulk_queries_and_items(project=project, items=items, items_per_query=items_per_query)
        figures["insert_items_s"] = round(time.perf_counter() - started, 2)
        figures["planning"] = time_planning(project=project)
        self.stderr.write(
            "planning: {pages} pages (one task each) in {seconds} s, {cpu_s} s CPU in this "
            "process, {tasks_per_s} tasks/s".format(**figures["planning"])
        )
        users = {}
        for role in ("lead", "annotator", "scientist"):
            user = get_user_model().objects.create_user(f"{project.slug}-{role}")
            Membership.objects.create(project=project, user=user, role=role)
            users[role] = user
        others = [get_user_model().objects.create_user(f"{project.slug}-a{i}") for i in range(3)]
        Membership.objects.bulk_create(
            [Membership(project=project, user=u, role=Role.ANNOTATOR) for u in others]
        )
        figures["judgments"] = judge_tasks(project=project, annotators=others, count=judged)
        return project, figures, users
