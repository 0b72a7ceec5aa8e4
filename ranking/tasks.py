"""Celery entry points of ranking: thin, take ids, safe to run twice."""

from celery import shared_task

from labeling.models import Project

from . import services, vlm_scoring
from .models import VlmScorerVersion, VlmScoringRun


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


@shared_task(acks_late=True)
def score_project_with_vlm(project_id: int, run_id: int | None = None) -> int:
    """Score the project's items with its vision-language model; returns the items read."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    run = VlmScoringRun.objects.filter(pk=run_id, project=project).first() if run_id else None
    if run is not None and run.status == VlmScoringRun.Status.DONE:
        return 0  # delivered again after it finished
    return vlm_scoring.score_items(project=project, run=run).items_scored


@shared_task(bind=True, acks_late=True)
def fine_tune_vlm(self, project_id: int, version_id: int) -> str | None:
    """Fine-tune the project's vision-language scorer as version `version_id`; its status."""
    version = VlmScorerVersion.objects.filter(pk=version_id, project_id=project_id).first()
    if version is None:
        return None
    if version.status == VlmScorerVersion.Status.TRAINING and self.request.id:
        VlmScorerVersion.objects.filter(pk=version.pk).update(celery_task_id=self.request.id)
    return vlm_scoring.fine_tune_version(version=version).status
