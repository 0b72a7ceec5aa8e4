from django.apps import AppConfig


class ActiveSelectionConfig(AppConfig):
    name = "active_selection"
    verbose_name = "Active selection"

    def ready(self) -> None:
        from labeling.signals import judgment_recorded

        from . import tasks

        def queue_follow_up(sender, judgment_id: int, **kwargs) -> None:
            # Sent after the judgment's commit, so the worker always finds it.
            tasks.judgment_recorded.delay(judgment_id)

        judgment_recorded.connect(
            queue_follow_up, dispatch_uid="active_selection.judgment_recorded"
        )
