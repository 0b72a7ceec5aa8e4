from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from . import receivers, tasks  # noqa: F401  (tasks: registers deliver_webhook by name)

        receivers.connect()
