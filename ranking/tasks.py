"""Celery entry points of ranking: thin, take ids, safe to run twice."""

from celery import shared_task

from labeling.models import Project

from . import services


@shared_task(acks_late=True)
def embed_project_items(project_id: int) -> int:
    project = Project.objects.filter(pk=project_id).first()
    return services.embed_items(project=project) if project else 0


@shared_task(bind=True, acks_late=True)
def retrain_reranker(self, project_id: int) -> int | None:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    version = services.train_version(project=project, celery_task_id=self.request.id or "")
    return version.number if version else None
