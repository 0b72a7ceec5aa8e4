"""Streaming exports for data scientists: generators of text lines that hold constant memory.

Formats (`FORMATS`), shared by the web download, `/api/projects/<slug>/exports/<format>/` and
`python manage.py export PROJECT --format FORMAT`:

- `judgments-jsonl`, `judgments-csv`: one row per judgment (grades and comparisons), with the
  item grades of a grade_page judgment inline (`grades`: item id -> grade).
- `qrels`: TREC qrels `qid 0 docid grade`. Train queries carry the HUMAN label that training uses
  (`labeling.selectors.human_grades`: the lead's adjudication, else the lower median of the
  annotators' grades; ungraded items are left out); gold queries carry their imported gold grade.
  Implied grades are not exported here (they are intervals; see the pairs export).
- `pairs`: preference pairs as JSONL with their source (human, implied, upstream).
- `run`: the active reranker's scores as a TREC run `qid Q0 docid rank score tag`.
- `weights`: the active reranker version's weights file, as is.

Querysets are read with `.iterator(chunk_size=...)` and rows are merged in order, never collected.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.http import FileResponse, HttpResponse, StreamingHttpResponse

from active_selection.models import PreferencePair
from labeling.errors import NotFound, PagewiseError
from labeling.models import Item, ItemGrade, Judgment, Project, Query, Split
from labeling.selectors import human_grades
from labeling.text_checks import csv_safe
from ranking import services as ranking_services
from ranking.services import active_version

CHUNK = 2000
QUERY_BATCH = 20  # train queries labelled per human_grades() call in the qrels export


@dataclass(frozen=True)
class ExportFormat:
    name: str
    stem: str
    extension: str
    content_type: str
    description: str


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in [
        ExportFormat(
            "judgments-jsonl", "judgments", "jsonl", "application/x-ndjson",
            "Every judgment, one JSON object a line, with its item grades.",
        ),
        ExportFormat(
            "judgments-csv", "judgments", "csv", "text/csv",
            "Every judgment as a CSV row; item grades as a JSON column.",
        ),
        ExportFormat(
            "qrels", "qrels", "txt", "text/plain",
            "TREC qrels: human labels of train queries, gold grades of gold queries.",
        ),
        ExportFormat(
            "pairs", "pairs", "jsonl", "application/x-ndjson",
            "Preference pairs (better, worse) with their source: human, implied, upstream.",
        ),
        ExportFormat(
            "run", "run", "txt", "text/plain",
            "TREC run file of the active reranker's scores on every embedded item.",
        ),
        ExportFormat(
            "weights", "weights", "safetensors", "application/octet-stream",
            "The active reranker version's model weights.",
        ),
    ]
}  # fmt: skip


def export_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise NotFound(f"Unknown export format '{name}'; use one of {', '.join(FORMATS)}.")
    return FORMATS[name]


def export_filename(*, project: Project, fmt: ExportFormat, now: datetime | None = None,
                    version_number: int | None = None, extension: str | None = None) -> str:  # fmt: skip
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    version = f"-v{version_number}" if version_number is not None else ""
    return f"{project.slug}-{fmt.stem}{version}-{stamp}.{extension or fmt.extension}"


# --- judgments --------------------------------------------------------------------------------


def _judgment_rows(project: Project) -> Iterator[dict]:
    """Judgments in id order, merged with their item grades (also read in judgment order)."""
    judgments = (
        Judgment.objects.filter(project=project)
        .order_by("pk")
        .values_list(
            "pk", "client_uuid", "task_id", "kind", "annotator__username", "created_at",
            "duration_ms", "cost", "outcome", "task__anchor__external_id",
            "task__other__external_id", "task__page__query__external_id",
            "task__anchor__query__external_id", "task__reason", "supersedes_id",
            "guideline__version",
        )
    )  # fmt: skip
    grades = iter(
        ItemGrade.objects.filter(judgment__project=project)
        .order_by("judgment_id", "pk")
        .values_list("judgment_id", "item__external_id", "grade")
        .iterator(chunk_size=CHUNK)
    )
    pending = next(grades, None)
    for (pk, client_uuid, task_id, kind, annotator, created_at, duration_ms, cost, outcome,
         anchor, other, page_query, compare_query, reason, supersedes, guideline_version,
         ) in judgments.iterator(chunk_size=CHUNK):  # fmt: skip
        item_grades: dict[str, int] = {}
        while pending is not None and pending[0] <= pk:
            if pending[0] == pk:
                item_grades[pending[1]] = pending[2]
            pending = next(grades, None)
        yield {
            "judgment_id": pk,
            "client_uuid": str(client_uuid),
            "task_id": task_id,
            "kind": kind,
            "query": page_query or compare_query,
            "annotator": annotator,
            "created_at": created_at.isoformat(),
            "duration_ms": duration_ms,
            "cost": str(cost),
            "outcome": outcome,
            "anchor": anchor,
            "other": other,
            "reason": reason,
            "grades": item_grades,
            # A revision names the judgment it replaces; labels use the latest of each chain.
            "supersedes": supersedes,
            "guideline_version": guideline_version,
        }


def judgments_jsonl(project: Project) -> Iterator[str]:
    for row in _judgment_rows(project):
        yield json.dumps(row, ensure_ascii=False) + "\n"


CSV_COLUMNS = [
    "judgment_id", "client_uuid", "task_id", "kind", "query", "annotator", "created_at",
    "duration_ms", "cost", "outcome", "anchor", "other", "reason", "grades", "supersedes",
    "guideline_version",
]  # fmt: skip


def judgments_csv(project: Project) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for row in _judgment_rows(project):
        row["grades"] = json.dumps(row["grades"], ensure_ascii=False) if row["grades"] else ""
        writer.writerow(["" if row[c] is None else csv_safe(row[c]) for c in CSV_COLUMNS])
        yield flush()


# --- labels and pairs -------------------------------------------------------------------------


def qrels(project: Project) -> Iterator[str]:
    """`qid 0 docid grade`: human labels of train queries, then gold grades of gold queries."""
    train = (
        Query.objects.filter(project=project, split=Split.TRAIN)
        .order_by("external_id")
        .values_list("pk", "external_id")
    )
    batch: list[tuple[int, str]] = []

    def labelled(batch: list[tuple[int, str]]) -> Iterator[str]:
        labels = human_grades(query_ids=[pk for pk, _ in batch])
        names = dict(batch)
        items = (
            Item.objects.filter(query_id__in=list(names))
            .order_by("query__external_id", "external_id")
            .values_list("pk", "query_id", "external_id")
        )
        for pk, query_id, external_id in items.iterator(chunk_size=CHUNK):
            if pk in labels:
                yield f"{names[query_id]} 0 {external_id} {labels[pk]}\n"

    for row in train.iterator(chunk_size=CHUNK):
        batch.append(row)
        if len(batch) >= QUERY_BATCH:
            yield from labelled(batch)
            batch = []
    if batch:
        yield from labelled(batch)
    gold = (
        Item.objects.filter(project=project, query__split=Split.GOLD, gold_grade__isnull=False)
        .order_by("query__external_id", "external_id")
        .values_list("query__external_id", "external_id", "gold_grade")
    )
    for qid, docid, grade in gold.iterator(chunk_size=CHUNK):
        yield f"{qid} 0 {docid} {grade}\n"


def pairs_jsonl(project: Project) -> Iterator[str]:
    rows = (
        PreferencePair.objects.filter(project=project)
        .order_by("pk")
        .values_list(
            "query__external_id", "better__external_id", "worse__external_id", "source",
            "judgment_id", "search_id", "created_at",
        )
    )  # fmt: skip
    for query, better, worse, source, judgment_id, search_id, created_at in rows.iterator(
        chunk_size=CHUNK
    ):
        record = {
            "query": query, "better": better, "worse": worse, "source": source,
            "judgment_id": judgment_id, "search_id": search_id,
            "created_at": created_at.isoformat(),
        }  # fmt: skip
        yield json.dumps(record, ensure_ascii=False) + "\n"


# --- the reranker -----------------------------------------------------------------------------


def require_active_version(project: Project):
    version = active_version(project=project)
    if version is None:
        raise NotFound(
            f"'{project.name}' has no active reranker version yet; it trains after "
            f"{project.retrain_threshold} new labels."
        )
    return version


def run_file(project: Project, version) -> Iterator[str]:
    """`qid Q0 docid rank score tag`; rerank_scores yields one query's page at a time, so only
    that page is held to rank it."""
    tag = f"pagewise-{project.slug}-v{version.number}"
    page: list[tuple[str, float]] = []
    current = None

    def ranked(qid: str, page: list[tuple[str, float]]) -> Iterator[str]:
        # trec_eval reads the scores, not the ranks, and breaks ties by docid in descending
        # order: the ranks written here follow the same order. Scores are written in full (repr)
        # so that the file's ties are the model's ties and trec_ndcg@k is reproduced exactly.
        page.sort(key=lambda p: p[0], reverse=True)
        page.sort(key=lambda p: -p[1])
        for rank, (docid, score) in enumerate(page, start=1):
            yield f"{qid} Q0 {docid} {rank} {score!r} {tag}\n"

    for qid, docid, score in ranking_services.rerank_scores(project=project, version=version):
        if qid != current and page:
            yield from ranked(current, page)
            page = []
        current = qid
        page.append((docid, score))
    if page:
        yield from ranked(current, page)


def weights_path(project: Project, version) -> Path:
    path = Path(version.weights_path) if version.weights_path else None
    if path is None or not path.is_file():
        raise NotFound(f"The weights file of reranker v{version.number} is missing.")
    return path


@dataclass
class PreparedExport:
    """What a download needs: lines to stream (or a file to send), its name and content type."""

    fmt: ExportFormat
    filename: str
    lines: Iterator[str] | None = None
    path: Path | None = None


def prepare_export(*, project: Project, name: str) -> PreparedExport:
    """Check everything that can fail before the first byte is sent, then return the stream."""
    fmt = export_format(name)
    if name in ("run", "weights"):
        version = require_active_version(project)
        if name == "weights":
            path = weights_path(project, version)
            filename = export_filename(
                project=project, fmt=fmt, version_number=version.number,
                extension=path.suffix.lstrip(".") or fmt.extension,
            )  # fmt: skip
            return PreparedExport(fmt, filename, path=path)
        filename = export_filename(project=project, fmt=fmt, version_number=version.number)
        return PreparedExport(fmt, filename, lines=run_file(project, version))
    producers = {
        "judgments-jsonl": judgments_jsonl,
        "judgments-csv": judgments_csv,
        "qrels": qrels,
        "pairs": pairs_jsonl,
    }
    if name not in producers:  # pragma: no cover - FORMATS and producers are kept in step
        raise PagewiseError(f"Export '{name}' is not available.")
    return PreparedExport(
        fmt, export_filename(project=project, fmt=fmt), lines=producers[name](project)
    )


def export_response(prepared: PreparedExport) -> HttpResponse:
    """A streamed download (or the weights file) named after the project and the UTC time."""
    if prepared.path is not None:
        return FileResponse(
            prepared.path.open("rb"),
            as_attachment=True,
            filename=prepared.filename,
            content_type=prepared.fmt.content_type,
        )
    content_type = prepared.fmt.content_type
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    response = StreamingHttpResponse(
        (line.encode() for line in prepared.lines), content_type=content_type
    )
    response["Content-Disposition"] = f'attachment; filename="{prepared.filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
