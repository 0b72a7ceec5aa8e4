from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        # Registers labeling's Celery tasks in every process: import_runs queues run_import by
        # its name (it cannot import the tasks module that imports it).
        from . import tasks  # noqa: F401
