"""Exports for data scientists: formats, file names, and constant memory while streaming."""

from __future__ import annotations

import csv
import io
import json
import re
import tracemalloc
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from active_selection.models import PairSource, PreferencePair
from labeling.models import (
    CandidatePage,
    Item,
    ItemGrade,
    Judgment,
    Query,
    Task,
    TaskKind,
    TaskStatus,
)
from ranking.models import RerankerVersion
from web import exports

from .lead_factories import small_project

STAMP = r"\d{8}T\d{6}Z"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # make_user sets real passwords; PBKDF2's cost (~0.5 s each) is not what these tests check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def small(project, make_user):
    return small_project(project, make_user)


@pytest.fixture
def scientist_client(client, project, make_user):
    client.force_login(make_user("sci", role="scientist", project=project))
    return client


def download(client, project, name: str):
    response = client.get(reverse("export-download", args=[project.slug, name]))
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body.decode()


def filename_of(response) -> str:
    match = re.search(r'filename="([^"]+)"', response["Content-Disposition"])
    assert match, response["Content-Disposition"]
    return match.group(1)


def test_qrels_hold_human_labels_of_train_queries_and_gold_grades(scientist_client, project, small):
    response, text = download(scientist_client, project, "qrels")
    assert re.fullmatch(rf"p-qrels-{STAMP}\.txt", filename_of(response))
    rows = [line.split() for line in text.splitlines()]
    assert all(len(row) == 4 and row[1] == "0" and row[3].isdigit() for row in rows)
    labels = {(qid, docid): int(grade) for qid, _, docid, grade in rows}
    assert labels[("q1", "q1-d1")] == 1  # grades 2 and 1: the lower median
    assert labels[("q2", "q2-d0")] == 4
    assert labels[("g1", "g1-d0")] == 3 and labels[("g1", "g1-d1")] == 0
    assert len(rows) == 8 + 2


def test_judgments_jsonl_has_one_line_per_judgment_with_item_grades(
    scientist_client, project, small
):
    response, text = download(scientist_client, project, "judgments-jsonl")
    assert re.fullmatch(rf"p-judgments-{STAMP}\.jsonl", filename_of(response))
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == Judgment.objects.filter(project=project).count() == 7
    graded = [r for r in records if r["kind"] == "grade_page"]
    assert graded[0]["grades"] == {"q1-d0": 3, "q1-d1": 2, "q1-d2": 0, "q1-d3": 1}
    assert graded[0]["query"] == "q1" and graded[0]["annotator"] == "ann1"
    compared = [r for r in records if r["kind"] == "compare"]
    assert {r["outcome"] for r in compared} == {"anchor_better", "equal"}
    assert compared[0]["anchor"] == "q1-d0" and compared[0]["grades"] == {}


def test_judgments_export_keeps_why_each_task_was_chosen(scientist_client, project, small):
    # The reason is hidden from annotators (blind comparisons), never from the exports.
    Task.objects.filter(project=project, kind="compare").update(reason="Search probe (grade 3)")
    records = [json.loads(line) for line in download(scientist_client, project, "judgments-jsonl")[1].splitlines()]  # fmt: skip
    assert {r["reason"] for r in records if r["kind"] == "compare"} == {"Search probe (grade 3)"}
    rows = list(
        csv.DictReader(io.StringIO(download(scientist_client, project, "judgments-csv")[1]))
    )
    assert {r["reason"] for r in rows if r["kind"] == "compare"} == {"Search probe (grade 3)"}


def test_judgments_csv_has_a_header_and_one_row_per_judgment(scientist_client, project, small):
    response, text = download(scientist_client, project, "judgments-csv")
    assert re.fullmatch(rf"p-judgments-{STAMP}\.csv", filename_of(response))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == exports.CSV_COLUMNS
    assert len(rows) == 7
    assert json.loads(rows[0]["grades"]) == {"q1-d0": 3, "q1-d1": 2, "q1-d2": 0, "q1-d3": 1}


def test_pairs_export_carries_each_pair_source(scientist_client, project, small):
    a, b, c = small["items1"][:3]
    for better, worse, source in [
        (a, b, PairSource.HUMAN),
        (a, c, PairSource.IMPLIED),
        (b, c, PairSource.UPSTREAM),
    ]:
        PreferencePair.objects.create(
            project=project, query=a.query, better=better, worse=worse, source=source
        )
    response, text = download(scientist_client, project, "pairs")
    assert re.fullmatch(rf"p-pairs-{STAMP}\.jsonl", filename_of(response))
    records = [json.loads(line) for line in text.splitlines()]
    assert [(r["better"], r["worse"], r["source"]) for r in records] == [
        ("q1-d0", "q1-d1", "human"), ("q1-d0", "q1-d2", "implied"), ("q1-d1", "q1-d2", "upstream"),
    ]  # fmt: skip


def test_run_file_ranks_each_query_by_the_active_reranker(
    scientist_client, project, small, monkeypatch
):
    from ranking import services as ranking_services

    RerankerVersion.objects.create(project=project, number=3, status="active")
    scores = [
        ("q1", "q1-d0", 0.1),
        ("q1", "q1-d1", 0.9),
        ("q1", "q1-d2", 0.5),
        ("g1", "g1-d0", 2.0),
    ]
    monkeypatch.setattr(ranking_services, "rerank_scores", lambda **kw: iter(scores))
    response, text = download(scientist_client, project, "run")
    assert re.fullmatch(rf"p-run-v3-{STAMP}\.txt", filename_of(response))
    rows = [line.split() for line in text.splitlines()]
    assert all(len(row) == 6 and row[1] == "Q0" for row in rows)
    assert [(r[0], r[2], int(r[3])) for r in rows] == [
        ("q1", "q1-d1", 1), ("q1", "q1-d2", 2), ("q1", "q1-d0", 3), ("g1", "g1-d0", 1),
    ]  # fmt: skip
    assert float(rows[0][4]) == pytest.approx(0.9) and rows[0][5] == "pagewise-p-v3"


def test_run_and_weights_without_a_version_are_a_clear_404(client, project, make_user):
    client.force_login(make_user("sci", role="scientist", project=project))
    response = client.get(reverse("api-export", args=[project.slug, "run"]))
    assert response.status_code == 404
    assert "no active reranker version yet" in response.json()["message"]
    assert client.get(reverse("export-download", args=[project.slug, "weights"])).status_code == 404
    assert client.get(reverse("api-export", args=[project.slug, "nope"])).status_code == 404


def test_weights_download_is_the_active_versions_file(client, project, make_user, tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x00weights\xff")
    RerankerVersion.objects.create(
        project=project, number=2, status="active", weights_path=str(weights)
    )
    client.force_login(make_user("sci", role="scientist", project=project))
    response = client.get(reverse("api-export", args=[project.slug, "weights"]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x00weights\xff"
    assert re.search(
        rf'filename="p-weights-v2-{STAMP}\.safetensors"', response["Content-Disposition"]
    )


def test_export_command_writes_the_same_qrels(project, small, tmp_path):
    out = tmp_path / "labels.txt"
    call_command("export", "p", "--format", "qrels", "--out", str(out))
    lines = out.read_text().splitlines()
    assert "q1 0 q1-d1 1" in lines and "g1 0 g1-d0 3" in lines
    call_command("export", "p", "--format", "judgments-csv", "--out", str(tmp_path))
    assert len(list(tmp_path.glob("p-judgments-*.csv"))) == 1


# --- constant memory --------------------------------------------------------------------------

ITEMS_PER_QUERY = 50


def build_graded_project(project, annotator, n_items: int) -> None:
    """n_items graded items (one grade_page judgment per query), written with bulk_create."""
    n_queries = n_items // ITEMS_PER_QUERY
    Query.objects.bulk_create(
        [
            Query(project=project, external_id=f"q{i:05d}", text=f"query {i}")
            for i in range(n_queries)
        ]
    )
    queries = list(Query.objects.filter(project=project).order_by("external_id"))
    Item.objects.bulk_create(
        [
            Item(project=project, query=q, external_id=f"{q.external_id}-d{j:02d}", modality="text",
                 title=f"Document {j} about {q.text}", upstream_rank=j + 1)
            for q in queries for j in range(ITEMS_PER_QUERY)
        ],
        batch_size=2000,
    )  # fmt: skip
    CandidatePage.objects.bulk_create([CandidatePage(project=project, query=q) for q in queries])
    pages = {p.query_id: p for p in CandidatePage.objects.filter(project=project)}
    # Page slots are left out: no export reads them, and they would double the build time.
    items = Item.objects.filter(project=project).order_by("query_id", "upstream_rank")
    Task.objects.bulk_create(
        [
            Task(project=project, kind=TaskKind.GRADE_PAGE, page=p, status=TaskStatus.DONE)
            for p in pages.values()
        ]
    )
    tasks = {
        t.page.query_id: t for t in Task.objects.filter(project=project).select_related("page")
    }
    Judgment.objects.bulk_create(
        [Judgment(task=t, project=project, annotator=annotator, kind=TaskKind.GRADE_PAGE,
                  cost=Decimal("5.0"), duration_ms=60_000) for t in tasks.values()],
        batch_size=2000,
    )  # fmt: skip
    judgment_of = dict(
        Judgment.objects.filter(project=project).values_list("task__page__query_id", "pk")
    )
    ItemGrade.objects.bulk_create(
        [ItemGrade(judgment_id=judgment_of[q], item_id=pk, grade=pk % 5) for pk, q in items.values_list("pk", "query_id")],
        batch_size=5000,
    )  # fmt: skip


def streamed_peak(client, project, name: str) -> tuple[int, int, int]:
    """(peak traced bytes, chunks, lines) while streaming one export to the end; the smaller
    peak of two runs, as tracemalloc also counts what other threads of the process allocate
    meanwhile (under pytest-xdist, its channel thread receiving the next tests)."""
    runs = []
    for _ in range(2):
        response = client.get(reverse("api-export", args=[project.slug, name]))
        assert response.status_code == 200 and response.streaming
        tracemalloc.start()
        chunks = lines = 0
        try:
            for chunk in response.streaming_content:
                chunks += 1
                lines += chunk.count(b"\n")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        runs.append((peak, chunks, lines))
    assert runs[0][1:] == runs[1][1:]
    return min(runs)


def test_exports_stream_in_chunks_with_memory_independent_of_size(db, make_user):
    from django.test import Client

    from labeling.models import Membership, Project

    peaks: dict[tuple[str, int], int] = {}
    for n_items in (2_000, 20_000):
        project = Project.objects.create(slug=f"big{n_items}", name=f"Big {n_items}")
        annotator = make_user(f"ann{n_items}")
        Membership.objects.create(project=project, user=annotator, role="annotator")
        build_graded_project(project, annotator, n_items)
        client = Client()
        client.force_login(make_user(f"sci{n_items}", role="scientist", project=project))
        for name, expected_lines in [
            ("qrels", n_items), ("judgments-jsonl", n_items // ITEMS_PER_QUERY),
        ]:  # fmt: skip
            peak, chunks, lines = streamed_peak(client, project, name)
            assert lines == expected_lines
            assert chunks >= expected_lines  # one chunk a line: nothing is built up whole
            peaks[(name, n_items)] = peak
    for name in ("qrels", "judgments-jsonl"):
        small, large = peaks[(name, 2_000)], peaks[(name, 20_000)]
        # Ten times the data may cost no more than a small constant on top of the small export.
        assert large < 4 * 1024 * 1024, peaks
        assert large < small * 1.5 + 512 * 1024, peaks
