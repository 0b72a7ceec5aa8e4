"""Server time of the data browser's pages on a generated project (100,000 items by default).

    python manage.py bench_data_browser [--items 100000] [--repeat 5]

Builds project `bench-browser` (bulk inserts: queries of 40 items, text and image; every tenth
query's top six items graded by two annotators who disagree on one item), then requests each page
through Django's test client in this process (routing, queries, template; no network) and prints
the median and the worst of `repeat` runs. Run it on a database of its own: the project stays
(judgments are append-only) and a second run reuses it.
"""

from __future__ import annotations

import random
import statistics
import time
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test import Client
from django.urls import reverse

from labeling.benchmarks import refresh_planner_statistics
from labeling.models import (
    CandidatePage,
    Item,
    ItemGrade,
    Judgment,
    Membership,
    PageSlot,
    Project,
    Query,
    Task,
    TaskKind,
    TaskStatus,
)

SLUG = "bench-browser"
TARGET_MS = 200


class Command(BaseCommand):
    help = "Time the data browser's pages on a generated 100,000-item project."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=100_000)
        parser.add_argument("--repeat", type=int, default=5)

    def handle(self, *args, items: int, repeat: int, **options):
        started = time.perf_counter()
        project = Project.objects.filter(slug=SLUG).first()
        if project is None:  # judgments are append-only: the project stays, a later run reuses it
            project = self._build(items)
        graded = Query.objects.filter(project=project, pages__isnull=False).order_by("pk")
        sample_query = graded[graded.count() // 2]
        self.stdout.write(
            f"{Item.objects.filter(project=project).count()} items in {Query.objects.filter(project=project).count()} queries "
            f"(built or found in {time.perf_counter() - started:.1f} s)"
        )
        refresh_planner_statistics()
        client = Client()
        client.force_login(Membership.objects.get(project=project, role="lead").user)
        queries_url = reverse("data-queries", args=[SLUG])
        query_url = reverse("data-query", args=[SLUG, sample_query.pk])
        last_page = -(-Query.objects.filter(project=project).count() // 50)
        pages = [
            ("queries, page 1", queries_url, {}),
            ("queries, last page", queries_url, {"page": last_page}),
            ("queries, search 'q123'", queries_url, {"q": "q123"}),
            ("queries, status ungraded", queries_url, {"status": "ungraded"}),
            ("queries, status graded", queries_url, {"status": "graded"}),
            ("queries, disagreements", queries_url, {"status": "disagreements"}),
            ("queries, contradictions", queries_url, {"status": "contradictions"}),
            ("one query's items", query_url, {}),
            ("one query, disagreements", query_url, {"only": "disagreements"}),
            ("one query, ungraded", query_url, {"only": "ungraded"}),
        ]
        worst = 0.0
        for label, url, params in pages:
            times = []
            for _ in range(repeat):
                tick = time.perf_counter()
                response = client.get(url, params)
                times.append((time.perf_counter() - tick) * 1000)
                assert response.status_code == 200, (label, response.status_code)
            worst = max(worst, statistics.median(times))
            self.stdout.write(
                f"{label:32s} median {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms"
            )
        verdict = "within" if worst <= TARGET_MS else "OVER"
        self.stdout.write(f"slowest median {worst:.1f} ms: {verdict} the {TARGET_MS} ms target")

    @transaction.atomic
    def _build(self, n_items: int) -> Project:
        rng = random.Random(0)
        users = get_user_model().objects
        lead, _ = users.get_or_create(username="bench-lead")
        annotators = [users.get_or_create(username=f"bench-ann{i}")[0] for i in (1, 2)]
        project = Project.objects.create(
            slug=SLUG, name="Data browser benchmark", budget=Decimal("100000")
        )
        Membership.objects.create(project=project, user=lead, role="lead")
        per_query = 40
        queries = Query.objects.bulk_create(
            [
                Query(project=project, external_id=f"q{q}", text=f"generated query number {q}")
                for q in range(max(1, n_items // per_query))
            ],
            batch_size=2000,
        )
        rows = []
        for query in queries:
            for i in range(per_query):
                modality = "text" if i % 2 == 0 else "image"
                rows.append(
                    Item(
                        project=project, query=query, external_id=f"{query.external_id}-d{i}",
                        modality=modality, title=f"Result {i} of {query.external_id}",
                        text="generated text " * 8, upstream_score=rng.random(),
                        upstream_rank=i // 2 + 1,
                    )
                )  # fmt: skip
        Item.objects.bulk_create(rows, batch_size=5000)
        graded = queries[::10]
        by_query: dict[int, list[int]] = {}
        for item_id, query_id in Item.objects.filter(
            project=project, query__in=graded, upstream_rank__lte=3
        ).values_list("pk", "query_id"):
            by_query.setdefault(query_id, []).append(item_id)
        grades = []
        for query in graded:
            page = CandidatePage.objects.create(project=project, query=query)
            item_ids = by_query[query.pk]
            PageSlot.objects.bulk_create(
                [PageSlot(page=page, position=p, item_id=i) for p, i in enumerate(item_ids)]
            )
            task = Task.objects.create(
                project=project, kind=TaskKind.GRADE_PAGE, page=page, status=TaskStatus.DONE,
                judgments_required=2,
            )  # fmt: skip
            for n, annotator in enumerate(annotators):
                judgment = Judgment.objects.create(
                    task=task, project=project, annotator=annotator, kind=TaskKind.GRADE_PAGE,
                    cost=project.grade_cost * len(item_ids), duration_ms=12_000,
                )  # fmt: skip
                for position, item_id in enumerate(item_ids):
                    grade = max(0, 3 - position // 2) if not (n and position == 1) else 0
                    grades.append(ItemGrade(judgment=judgment, item_id=item_id, grade=grade))
        ItemGrade.objects.bulk_create(grades, batch_size=5000)
        return project
