"""Imports as jobs: an upload becomes a queued ImportRun with its file on disk, a worker checks
and stores it (labeling/imports.py, still all or nothing) while writing its progress on the run,
and a lead may cancel it until it has been stored.

Progress is written in short transactions of its own while the file is checked, which happens
outside the import's write transaction; the rows are then stored in one transaction. So the
same code works on SQLite (one writer at a time) and on PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from celery import signature
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from .errors import Conflict, ImportCancelled, ImportFailed, PagewiseError
from .imports import MAX_PROBLEMS_SHOWN, ImportProblem, ImportProgress, import_project_file
from .models import ImportRun, ImportStatus, Project

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20


def import_dir() -> Path:
    folder = Path(settings.PAGEWISE_IMPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _disk_name(filename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[-80:] or "upload"
    return f"{uuid.uuid4().hex}-{stem}"


def save_upload(upload) -> tuple[Path, int]:
    """Put an uploaded file in the import folder without holding it in memory: a large upload
    that Django already spooled to a temporary file is moved; a small one is copied in chunks."""
    target = import_dir() / _disk_name(upload.name or "upload")
    temporary = getattr(upload, "temporary_file_path", None)
    if temporary is not None:
        upload.file.flush()
        shutil.move(temporary(), target)  # Django's close() accepts a moved temporary file
    else:
        with open(target, "wb") as out:
            for chunk in upload.chunks(COPY_CHUNK):
                out.write(chunk)
    return target, target.stat().st_size


def queue_import(*, project: Project, upload, user) -> ImportRun:
    """Record an ImportRun for `upload` and queue its worker task after the commit."""
    if upload.size > settings.PAGEWISE_MAX_IMPORT_BYTES:
        raise PagewiseError(
            f"The upload is {upload.size} bytes; the limit is "
            f"{settings.PAGEWISE_MAX_IMPORT_BYTES} (PAGEWISE_MAX_IMPORT_BYTES).",
            fields={"file": ["too large"]},
        )
    path, size = save_upload(upload)
    task_id = str(uuid.uuid4())
    try:
        with transaction.atomic():
            run = ImportRun.objects.create(
                project=project,
                filename=(upload.name or "upload")[:300],
                source_path=str(path),
                source_bytes=size,
                created_by=user,
                task_id=task_id,
            )
            transaction.on_commit(lambda: _send(run.pk, task_id))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return run


def _send(run_id: int, task_id: str) -> None:
    """Queue the run's task; if the broker cannot take it, fail the run with the reason (and
    remove its upload) instead of leaving it queued for ever."""
    # Named, not imported: labeling.tasks runs this module's work (`execute_import`).
    run_import = signature("labeling.tasks.run_import", args=(run_id,))
    try:
        run_import.apply_async(task_id=task_id)
    except Exception as exc:
        if run_import.app.conf.task_always_eager:
            raise  # run in-process (tests, CELERY_TASK_ALWAYS_EAGER): the task itself failed
        log.exception("import run %s could not be queued", run_id)
        _finish(
            run_id,
            status=ImportStatus.FAILED,
            error=f"The import could not be queued for a worker ({exc}); upload it again.",
        )
        run = ImportRun.objects.filter(pk=run_id).first()
        if run is not None:
            _remove_source(run.source_path)


class RunProgress(ImportProgress):
    """Writes a run's progress in short transactions of its own, and reads its cancel flag."""

    def __init__(self, run: ImportRun) -> None:
        self.run_id = run.pk
        self.every_rows = settings.PAGEWISE_IMPORT_PROGRESS_ROWS
        self._in_store = False

    def rows(self, rows_read: int, problems: list[ImportProblem], total: int) -> None:
        ImportRun.objects.filter(pk=self.run_id).update(
            rows_read=rows_read,
            problems=[p.as_dict() for p in problems[:MAX_PROBLEMS_SHOWN]],
            problems_total=total,
        )

    def storing(self, rows_read: int) -> None:
        ImportRun.objects.filter(pk=self.run_id).update(rows_read=rows_read, stage="storing")
        self._in_store = True

    def check_cancelled(self) -> None:
        # While storing on PostgreSQL this reads the flag as committed by another connection; on
        # SQLite a cancel cannot be written while the store holds the write lock (it waits).
        if ImportRun.objects.filter(pk=self.run_id, cancel_requested=True).exists():
            raise ImportCancelled()


def _finish(run_id: int, **fields) -> None:
    # Only a run still active: a redelivered copy of the task that lost the race to a copy that
    # succeeded (say, past the broker's visibility timeout) must not mark the run failed.
    ImportRun.objects.filter(pk=run_id, status__in=ImportRun.ACTIVE).update(
        stage="", finished_at=timezone.now(), **fields
    )


def execute_import(*, run_id: int) -> ImportRun | None:
    """Check and store a queued run's file; safe to run twice (a finished run is left alone, a
    run left 'running' by a killed worker stored nothing and is run again)."""
    run = ImportRun.objects.select_related("project", "created_by").filter(pk=run_id).first()
    if run is None:
        return None
    try:
        if run.status not in ImportRun.ACTIVE:
            return run
        claimed = ImportRun.objects.filter(pk=run.pk, status__in=ImportRun.ACTIVE).update(
            status=ImportStatus.RUNNING, stage="checking", started_at=timezone.now(),
            rows_read=0, problems=[], problems_total=0, error="",
        )  # fmt: skip
        if not claimed:
            return run
        if run.cancel_requested:
            raise ImportCancelled()
        started = time.perf_counter()
        result = import_project_file(
            project=run.project,
            file=run.source_path,
            filename=run.filename,
            user=run.created_by,
            run=run,
            progress=RunProgress(run),
        )
        log.info(
            "import run %s: %s items stored in %.1f s",
            run.pk, result.items_created, time.perf_counter() - started,
        )  # fmt: skip
    except ImportCancelled:
        _finish(run.pk, status=ImportStatus.CANCELLED)
    except ImportFailed as exc:
        _finish(
            run.pk,
            status=ImportStatus.FAILED,
            error=exc.message,
            problems=[p.as_dict() for p in exc.problems[:MAX_PROBLEMS_SHOWN]],
            problems_total=exc.total,
        )
    except FileNotFoundError:
        _finish(
            run.pk,
            status=ImportStatus.FAILED,
            error="The uploaded file is no longer on disk (PAGEWISE_IMPORT_DIR); upload it again.",
        )
    except Exception as exc:
        log.exception("import run %s failed", run.pk)
        _finish(run.pk, status=ImportStatus.FAILED, error=f"The import failed: {exc}")
    finally:
        run.refresh_from_db()
        if run.status not in ImportRun.ACTIVE and run.source_path:
            _remove_source(run.source_path)
    return run


def _remove_source(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def request_cancel(*, run: ImportRun) -> ImportRun:
    """Ask a queued or running import to stop; a queued one is cancelled at once. Raises
    Conflict for a run that already finished, or that is storing on SQLite (the store holds the
    database's one write lock until it commits)."""
    try:
        if ImportRun.objects.filter(pk=run.pk, status=ImportStatus.QUEUED).update(
            status=ImportStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
        ):
            _remove_source(run.source_path)
        else:
            ImportRun.objects.filter(pk=run.pk, status__in=ImportRun.ACTIVE).update(
                cancel_requested=True
            )
    except OperationalError as exc:  # SQLite: "database is locked" past its timeout
        raise Conflict(
            "The import is storing its rows and can no longer be cancelled; "
            "it finishes in a moment."
        ) from exc
    run.refresh_from_db()
    if not run.cancel_requested:
        raise Conflict(f"The import already finished ({run.status}); there is nothing to cancel.")
    return run


def run_status(run: ImportRun) -> dict:
    """What the status page and the API show of a run."""
    return {
        "id": run.pk,
        "project": run.project.slug,
        "filename": run.filename,
        "status": run.status,
        "stage": run.stage,
        "rows_read": run.rows_read,
        "problems": run.problems,
        "problems_total": run.problems_total,
        "error": run.error,
        "queries_created": run.queries_created,
        "items_created": run.items_created,
        "images_stored": run.images_stored,
        "ignored_members": run.ignored_members,
        "ignored_members_total": run.ignored_members_total,
        "source_bytes": run.source_bytes,
        "cancel_requested": run.cancel_requested,
        "created_by": run.created_by.username if run.created_by else None,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
