from django.apps import AppConfig
from django.conf import settings


class RankingConfig(AppConfig):
    name = "ranking"
    verbose_name = "Ranking"

    def ready(self) -> None:
        from labeling.signals import items_imported

        from . import tasks

        def queue_embedding(sender, project_id: int, **kwargs) -> None:
            if settings.PAGEWISE_EMBED_AFTER_IMPORT:
                tasks.embed_project_items.delay(project_id)

        items_imported.connect(queue_embedding, dispatch_uid="ranking.items_imported")
