"""python manage.py bench_annotate --items 100000: median server time of "next task" and "submit".

Imports a generated project of the given size, creates its candidate pages, then times requests
to the real API views (Django's test client, in process: server time without network), one
annotator after another claiming and judging pages.
"""

import io
import json
import statistics
import time
import uuid
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client
from django.test.utils import override_settings

from active_selection.services import create_page_tasks
from labeling.benchmarks import generated_records, refresh_planner_statistics
from labeling.imports import import_project_file
from labeling.models import Membership, Project, Role


class Command(BaseCommand):
    help = "Benchmark next-task and submit server time on a large project."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=100_000)
        parser.add_argument("--requests", type=int, default=300, help="judgments to time")
        parser.add_argument("--json", dest="json_path", type=Path)

    def handle(self, *args, items, requests, json_path, **options):
        project = Project.objects.create(
            slug=f"bench-annotate-{int(time.time())}", name="Annotate benchmark", modalities=["text", "image"],
            strategy="full", page_size=10, budget=Decimal("10000000"),
        )  # fmt: skip
        data = io.BytesIO(
            "".join(json.dumps(r) + "\n" for r in generated_records(items=items)).encode()
        )
        with override_settings(PAGEWISE_EMBED_AFTER_IMPORT=False):
            import_project_file(project=project, file=data, filename="bench.jsonl")
        pages = create_page_tasks(project=project)
        refresh_planner_statistics()
        users = [get_user_model().objects.create_user(f"{project.slug}-a{i}") for i in range(10)]
        Membership.objects.bulk_create(
            [Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users]
        )
        clients = []
        for user in users:
            client = Client(raise_request_exception=True)
            client.force_login(user)
            clients.append(client)
        next_ms, submit_ms = [], []
        with override_settings(ALLOWED_HOSTS=["testserver"]):
            for i in range(requests):
                client = clients[i % len(clients)]
                started = time.perf_counter()
                response = client.post(
                    f"/api/projects/{project.slug}/tasks/next/", content_type="application/json"
                )
                next_ms.append((time.perf_counter() - started) * 1000)
                task = response.json()["task"]
                body = {"client_uuid": str(uuid.uuid4()), "duration_ms": 2000,
                        "grades": {str(item["id"]): 1 for item in task["items"]}}  # fmt: skip
                started = time.perf_counter()
                response = client.post(task["submit_url"], body, content_type="application/json")
                submit_ms.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 201, response.content
        figures = {
            "items": items,
            "pages": pages,
            "requests": requests,
            "database": connection.vendor,
            "next_task_ms_median": round(statistics.median(next_ms), 2),
            "submit_ms_median": round(statistics.median(submit_ms), 2),
            "next_task_ms_p95": round(sorted(next_ms)[int(0.95 * len(next_ms))], 2),
            "submit_ms_p95": round(sorted(submit_ms)[int(0.95 * len(submit_ms))], 2),
        }
        self.stdout.write(
            f"{items} items, {pages} pages on {figures['database']}: next task median {figures['next_task_ms_median']} ms "
            f"(p95 {figures['next_task_ms_p95']}), submit median {figures['submit_ms_median']} ms "
            f"(p95 {figures['submit_ms_p95']}) over {requests} judgments"
        )
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2))
