"""Django admin for every labeling model; judgments are shown read-only (append-only)."""

from django.contrib import admin
from django.utils.html import format_html

from .models import (
    CandidatePage,
    ImportRun,
    Item,
    ItemGrade,
    Judgment,
    Membership,
    PageSlot,
    Project,
    Query,
    Task,
    TaskSkip,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "strategy", "budget", "currency", "page_size", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "project"]
    autocomplete_fields = ["user"]


@admin.register(Query)
class QueryAdmin(admin.ModelAdmin):
    list_display = ["external_id", "text", "split", "project"]
    list_filter = ["project", "split"]
    search_fields = ["external_id", "text"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail", "external_id", "title", "modality", "query", "upstream_score", "upstream_rank",
        "gold_grade",
    ]  # fmt: skip
    list_filter = ["project", "modality"]
    search_fields = ["external_id", "title", "text"]
    list_select_related = ["query"]
    raw_id_fields = ["query"]
    readonly_fields = ["preview"]

    @admin.display(description="Image")
    def thumbnail(self, item: Item):
        if not item.image:
            return "—"
        return format_html(
            '<img src="{}" alt="" style="height:48px;border-radius:4px">', item.image.url
        )

    @admin.display(description="Preview")
    def preview(self, item: Item):
        if not item.image:
            return "No image"
        return format_html('<img src="{}" alt="" style="max-width:420px">', item.image.url)


class PageSlotInline(admin.TabularInline):
    model = PageSlot
    extra = 0
    raw_id_fields = ["item"]


@admin.register(CandidatePage)
class CandidatePageAdmin(admin.ModelAdmin):
    list_display = ["id", "query", "project", "created_at"]
    list_filter = ["project"]
    raw_id_fields = ["query"]
    inlines = [PageSlotInline]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "project",
        "assignee",
        "priority",
        "lease_expires_at",
        "reason",
    ]
    list_filter = ["project", "kind", "status"]
    raw_id_fields = ["page", "anchor", "other", "assignee"]


class ItemGradeInline(admin.TabularInline):
    model = ItemGrade
    extra = 0
    can_delete = False
    readonly_fields = ["item", "grade"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    """Read-only: a judgment is never edited in place."""

    list_display = ["client_uuid", "kind", "outcome", "annotator", "project", "cost", "created_at"]
    list_filter = ["project", "kind"]
    inlines = [ItemGradeInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TaskSkip)
class TaskSkipAdmin(admin.ModelAdmin):
    list_display = ["task", "annotator", "created_at"]
    raw_id_fields = ["task"]


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "filename",
        "status",
        "rows_read",
        "problems_total",
        "queries_created",
        "items_created",
        "created_by",
        "created_at",
    ]
    list_filter = ["project", "status"]
