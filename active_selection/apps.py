from django.apps import AppConfig


class ActiveSelectionConfig(AppConfig):
    name = "active_selection"
    verbose_name = "Active selection"

    def ready(self) -> None:
        from labeling.signals import items_imported, judgment_recorded, project_settings_changed

        from . import follow_up, tasks

        def queue_follow_up(sender, judgment_id: int, **kwargs) -> None:
            # Sent after the judgment's commit, so the worker always finds it. Eager (tests, no
            # broker) it runs here and now; else it leaves in the next batch (follow_up).
            if tasks.judgment_recorded.app.conf.task_always_eager:
                tasks.judgment_recorded.delay(judgment_id)
            else:
                follow_up.judgments.add(judgment_id)

        def queue_page_planning(sender, project_id: int, **kwargs) -> None:
            # New queries, or settings (budget, strategy, band) that allow more pages: plan the
            # candidate pages the budget pays for. Planning twice creates a page once.
            tasks.create_page_tasks.delay(project_id)

        # weak=False: the receivers are closures that nothing else holds; connected weakly (the
        # default) they were collected as ready() returned in production (DEBUG=0; pytest and
        # DEBUG kept them alive), and the follow-up work waited for the recovery sweep.
        judgment_recorded.connect(
            queue_follow_up, dispatch_uid="active_selection.judgment_recorded", weak=False
        )
        items_imported.connect(
            queue_page_planning, dispatch_uid="active_selection.items_imported", weak=False
        )
        project_settings_changed.connect(
            queue_page_planning,
            dispatch_uid="active_selection.project_settings_changed",
            weak=False,
        )
