"""Celery entry points of labeling: thin, take ids, safe to run twice."""

from celery import shared_task

from . import import_runs, services
from .models import Project


@shared_task(acks_late=True)
def recompute_upstream_ranks(project_id: int) -> int:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    return services.recompute_upstream_ranks(project=project)


@shared_task(acks_late=True)
def run_import(run_id: int) -> str | None:
    """Check and store a queued import (labeling/import_runs.py); a finished run is left alone."""
    run = import_runs.execute_import(run_id=run_id)
    return run.status if run else None
