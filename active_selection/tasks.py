"""Celery entry points of active selection: thin, take ids, safe to run twice."""

import logging

from celery import shared_task

from labeling.models import Project

from . import recommendation, services, sweep

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def judgment_recorded(judgment_id: int) -> None:
    """One judgment's follow-up (eager mode, and messages queued before batches were sent)."""
    services.handle_judgment(judgment_id=judgment_id)


@shared_task(acks_late=True)
def judgments_recorded(judgment_ids: list[int]) -> None:
    """The follow-up of a batch of judgments (active_selection.follow_up), in their order; one
    that fails does not hold up the rest, and the task fails after them (the sweep redoes it)."""
    failed = None
    for judgment_id in judgment_ids:
        try:
            services.handle_judgment(judgment_id=judgment_id)
        except Exception as error:
            log.exception("follow-up of judgment %s failed", judgment_id)
            failed = failed or error
    if failed is not None:
        raise failed


@shared_task(acks_late=True)
def create_page_tasks(project_id: int) -> int:
    project = Project.objects.filter(pk=project_id).first()
    return services.create_page_tasks(project=project) if project else 0


@shared_task(acks_late=True)
def sweep_projects() -> int:
    """Periodic (Celery beat): recover follow-up work whose message was lost."""
    for project in Project.objects.all():
        sweep.sweep_project(project=project)
    return Project.objects.count()


@shared_task(acks_late=True)
def simulate_project(report_id: int) -> None:
    """Run a lead's "simulate before spending" report (minutes; a failure is stored on it)."""
    recommendation.run_project_simulation(report_id=report_id)
