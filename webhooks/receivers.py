"""What webhooks hears: the ground floor's signals (sent after each commit), turned into
deliveries. Each receiver only records deliveries and queues them; the sending is a Celery task."""

from __future__ import annotations

from decimal import Decimal

from django.db.models.signals import post_delete, post_save

from labeling import signals
from labeling.models import ImportRun, Judgment, Project
from labeling.selectors import budget_status

from . import services
from .models import Event, Webhook


def judgment_stored(sender, judgment_id: int, project_id: int, project=None, **kwargs) -> None:
    # Heard after every judgment: the project read with it tells whether any hook cares at all
    # (its listened_events, kept by hook_changed); without it, one query.
    if project is not None:
        listened = set(project.listened_events)
    else:
        listened = services.listened_events(project_id=project_id)
    if Event.JUDGMENT_STORED in listened:
        queue_judgment_stored(judgment_id=judgment_id, project_id=project_id)
    if Event.BUDGET_EXHAUSTED in listened:
        budget_check(project_id=project_id)


def queue_judgment_stored(*, judgment_id: int, project_id: int) -> None:
    def data() -> dict | None:
        judgment = (
            Judgment.objects.select_related("annotator", "task").filter(pk=judgment_id).first()
        )
        if judgment is None:
            return None
        grades = {
            external_id: grade
            for external_id, grade in judgment.grades.values_list("item__external_id", "grade")
        }
        task = judgment.task
        return {
            "judgment_id": judgment.pk,
            "task_id": task.pk,
            "kind": judgment.kind,
            "annotator": judgment.annotator.username,
            "grades": grades,
            "outcome": judgment.outcome,
            "anchor": task.anchor.external_id if task.anchor_id else None,
            "other": task.other.external_id if task.other_id else None,
            "cost": str(judgment.cost),
            "duration_ms": judgment.duration_ms,
            "created_at": judgment.created_at.isoformat(),
        }

    services.queue_event(
        project_id=project_id, event=Event.JUDGMENT_STORED, dedupe_key=f"judgment:{judgment_id}",
        data=data,
    )  # fmt: skip


def budget_check(*, project_id: int) -> None:
    """budget.exhausted: what judgments spent leaves less than the cheapest label (once per
    budget amount: a raised budget that runs out again is announced again)."""
    if not services.is_listening(project_id=project_id, event=Event.BUDGET_EXHAUSTED):
        return  # the spend is summed only for projects that asked to hear of it
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    costs = [c for c in (project.grade_cost, project.compare_cost) if c > 0]
    if not costs:
        return
    cent = Decimal("0.01")
    spent = Decimal(status_spent(project)).quantize(cent)
    remaining = project.budget - spent
    if remaining >= min(costs):
        return
    services.queue_event(
        project_id=project_id, event=Event.BUDGET_EXHAUSTED,
        dedupe_key=f"budget:{project.budget.quantize(Decimal('0.01'))}",
        data=lambda: {
            "budget": str(project.budget), "spent": str(spent),
            "remaining": str(remaining), "currency": project.currency,
        },
    )  # fmt: skip


def status_spent(project: Project) -> Decimal:
    return budget_status(project=project)["spent"]


def import_finished(sender, project_id: int, import_run_id: int | None = None, **kwargs) -> None:
    def data() -> dict | None:
        runs = ImportRun.objects.filter(project_id=project_id).select_related("created_by")
        run = runs.filter(pk=import_run_id).first() if import_run_id else runs.first()
        if run is None:
            return None
        return {
            "import_id": run.pk,
            "filename": run.filename,
            "queries_created": run.queries_created,
            "items_created": run.items_created,
            "created_by": run.created_by.username if run.created_by else None,
            "created_at": run.created_at.isoformat(),
        }

    key = f"import:{import_run_id}" if import_run_id else None
    services.queue_event(
        project_id=project_id, event=Event.IMPORT_FINISHED, dedupe_key=key, data=data
    )


def version_activated(sender, project_id: int, version_id: int, **kwargs) -> None:
    from ranking.models import RerankerVersion

    def data() -> dict | None:
        version = RerankerVersion.objects.filter(pk=version_id).first()
        if version is None:
            return None
        return {
            "version": version.number,
            "gold_ndcg10": version.gold_ndcg10,
            "measured_on": (version.metrics or {}).get("measured_on"),
            "labels_used": version.labels_used,
            "cost_spent": str(version.cost_spent),
            "finished_at": version.finished_at.isoformat() if version.finished_at else None,
        }

    services.queue_event(
        project_id=project_id, event=Event.VERSION_ACTIVATED,
        dedupe_key=f"version:{version_id}", data=data,
    )  # fmt: skip


def search_finished(sender, project_id: int, search_id: int, **kwargs) -> None:
    from active_selection.models import AnchorSearch, ImpliedGrade, PairSource, PreferencePair

    def data() -> dict | None:
        search = AnchorSearch.objects.select_related("query").filter(pk=search_id).first()
        if search is None:
            return None
        pairs = PreferencePair.objects.filter(search=search)
        return {
            "search_id": search.pk,
            "query": search.query.external_id,
            "probes_answered": search.probes_answered,
            "contradictions": search.contradictions,
            "pairs_human": pairs.filter(source=PairSource.HUMAN).count(),
            "pairs_implied": pairs.filter(source=PairSource.IMPLIED).count(),
            "implied_grades": ImpliedGrade.objects.filter(search=search).count(),
        }

    services.queue_event(
        project_id=project_id, event=Event.SEARCH_FINISHED,
        dedupe_key=f"search:{search_id}", data=data,
    )  # fmt: skip


def hook_changed(sender, instance: Webhook, **kwargs) -> None:
    services.keep_listened_events(project_id=instance.project_id)


def connect() -> None:
    post_save.connect(hook_changed, sender=Webhook, dispatch_uid="webhooks.hook_saved")
    post_delete.connect(hook_changed, sender=Webhook, dispatch_uid="webhooks.hook_deleted")
    signals.judgment_recorded.connect(judgment_stored, dispatch_uid="webhooks.judgment")
    signals.items_imported.connect(import_finished, dispatch_uid="webhooks.import")
    signals.version_activated.connect(version_activated, dispatch_uid="webhooks.version")
    signals.search_finished.connect(search_finished, dispatch_uid="webhooks.search")
