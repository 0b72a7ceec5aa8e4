from django.apps import AppConfig


class ActiveSelectionConfig(AppConfig):
    name = "active_selection"
    verbose_name = "Active selection"
