"""REST API of labeling: projects and the import endpoint."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import import_runs, selectors
from labeling.errors import NotFound, PagewiseError
from labeling.models import ImportRun, ImportStatus, Project, Role


class ProjectSerializer(serializers.ModelSerializer):
    query_count = serializers.IntegerField(read_only=True)
    item_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Project
        fields = [
            "slug", "name", "description", "grade_names", "modalities", "page_size", "top_band",
            "grade_cost", "compare_cost", "currency", "budget", "strategy", "budget_policy",
            "retrain_threshold", "judgments_per_task", "query_count", "item_count", "created_at",
        ]  # fmt: skip


class ProjectListApi(ListAPIView):
    """Projects the caller is a member of."""

    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.projects_for(user=self.request.user)


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectSerializer)
    def get(self, request, slug: str):
        project = selectors.projects_for(user=request.user).filter(slug=slug).first()
        if project is None:
            selectors.project_for(user=request.user, slug=slug)  # raises the right error
        return Response(ProjectSerializer(project).data)


class ImportRunSerializer(serializers.Serializer):
    """The schema of an import run as the API shows it (labeling.import_runs.run_status)."""

    id = serializers.IntegerField()
    url = serializers.CharField(help_text="Poll this for the run's status.")
    project = serializers.CharField()
    filename = serializers.CharField()
    status = serializers.ChoiceField(choices=ImportStatus.choices)
    stage = serializers.CharField(help_text="'checking', 'storing', or empty once finished.")
    rows_read = serializers.IntegerField()
    problems = serializers.ListField(
        child=serializers.DictField(), help_text="The first 50 (line, field, reason) found."
    )
    problems_total = serializers.IntegerField()
    error = serializers.CharField()
    queries_created = serializers.IntegerField()
    items_created = serializers.IntegerField()
    images_stored = serializers.IntegerField()
    ignored_members = serializers.ListField(
        child=serializers.CharField(),
        help_text="Zip members no line names (the first 50): not read, not stored.",
    )
    ignored_members_total = serializers.IntegerField()
    source_bytes = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


def _run_body(request, run: ImportRun) -> dict:
    url = reverse("api-import-run", args=[run.project.slug, run.pk])
    return {**import_runs.run_status(run), "url": request.build_absolute_uri(url)}


def _lead_run(request, slug: str, run_id: int) -> ImportRun:
    project = selectors.project_for(user=request.user, slug=slug, roles=(Role.LEAD,))
    run = project.imports.select_related("project", "created_by").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"No import {run_id} in project '{slug}'.")
    return run


class ImportApi(APIView):
    """Upload a .jsonl or .zip; a worker checks and stores it, all or nothing (lead only).

    Answers 202 at once with the queued run; poll its `url` for progress and the outcome.
    """

    parser_classes = [MultiPartParser]

    @extend_schema(
        request=inline_serializer("ImportUpload", {"file": serializers.FileField()}),
        responses={202: ImportRunSerializer},
    )
    def post(self, request, slug: str):
        project = selectors.project_for(user=request.user, slug=slug, roles=(Role.LEAD,))
        upload = request.FILES.get("file")
        if upload is None:
            raise PagewiseError(
                "Send the file as multipart form field 'file'.", fields={"file": ["missing"]}
            )
        run = import_runs.queue_import(project=project, upload=upload, user=request.user)
        body = _run_body(request, run)
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class ImportRunListApi(APIView):
    """The project's latest imports, newest first (lead only)."""

    @extend_schema(responses=ImportRunSerializer(many=True))
    def get(self, request, slug: str):
        project = selectors.project_for(user=request.user, slug=slug, roles=(Role.LEAD,))
        runs = project.imports.select_related("project", "created_by")[:50]
        return Response([_run_body(request, run) for run in runs])


class ImportRunApi(APIView):
    """One import's status: rows read, problems so far, and the outcome (lead only)."""

    @extend_schema(responses=ImportRunSerializer)
    def get(self, request, slug: str, run_id: int):
        return Response(_run_body(request, _lead_run(request, slug, run_id)))


class ImportRunCancelApi(APIView):
    """Cancel a queued or running import; nothing of it is stored (lead only). 409 when it
    already finished."""

    @extend_schema(request=None, responses={202: ImportRunSerializer})
    def post(self, request, slug: str, run_id: int):
        run = import_runs.request_cancel(run=_lead_run(request, slug, run_id))
        return Response(_run_body(request, run), status=status.HTTP_202_ACCEPTED)
