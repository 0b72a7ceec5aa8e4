from django.contrib import admin

from .models import RerankerVersion


@admin.register(RerankerVersion)
class RerankerVersionAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "number",
        "status",
        "gold_ndcg10",
        "labels_used",
        "cost_spent",
        "created_at",
    ]
    list_filter = ["project", "status"]
    readonly_fields = [f.name for f in RerankerVersion._meta.fields]

    def has_add_permission(self, request):
        return False
