from django.contrib import admin

from .models import AnchorSearch, PreferencePair, SimulationReport


@admin.register(AnchorSearch)
class AnchorSearchAdmin(admin.ModelAdmin):
    list_display = [
        "query",
        "reference_modality",
        "other_modality",
        "status",
        "probes_answered",
        "contradictions",
    ]
    list_filter = ["project", "status"]
    raw_id_fields = ["query"]


@admin.register(PreferencePair)
class PreferencePairAdmin(admin.ModelAdmin):
    list_display = ["query", "better", "worse", "source", "created_at"]
    list_filter = ["project", "source"]
    raw_id_fields = ["query", "better", "worse", "search", "judgment"]


@admin.register(SimulationReport)
class SimulationReportAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "status",
        "runs_done",
        "runs_total",
        "recommended_strategy",
        "created_at",
    ]
    list_filter = ["project", "status"]
    raw_id_fields = ["requested_by"]
