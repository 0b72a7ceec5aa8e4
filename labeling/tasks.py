"""Celery entry points of labeling: thin, take ids, safe to run twice."""

from celery import shared_task

from . import services
from .models import Project


@shared_task(acks_late=True)
def recompute_upstream_ranks(project_id: int) -> int:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    return services.recompute_upstream_ranks(project=project)
