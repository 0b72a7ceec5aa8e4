from django.apps import AppConfig
from django.conf import settings


class RankingConfig(AppConfig):
    name = "ranking"
    verbose_name = "Ranking"

    def ready(self) -> None:
        from labeling.models import Project
        from labeling.signals import items_imported, project_settings_changed

        from . import tasks, vlm_scoring

        def queue_embedding(sender, project_id: int, **kwargs) -> None:
            if settings.PAGEWISE_EMBED_AFTER_IMPORT:
                tasks.embed_project_items.delay(project_id)

        def queue_vlm_scoring(sender, project_id: int, **kwargs) -> None:
            # New items, or the scorer just turned on: score what the cache does not hold.
            project = Project.objects.filter(pk=project_id).first()
            if project is not None:
                vlm_scoring.queue_scoring(project=project)

        # weak=False: closures nothing else holds (see active_selection/apps.py).
        items_imported.connect(queue_embedding, dispatch_uid="ranking.items_imported", weak=False)
        items_imported.connect(
            queue_vlm_scoring, dispatch_uid="ranking.vlm.items_imported", weak=False
        )
        project_settings_changed.connect(
            queue_vlm_scoring, dispatch_uid="ranking.vlm.project_settings_changed", weak=False
        )
