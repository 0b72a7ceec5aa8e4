"""REST API of labeling: projects and the import endpoint."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors
from .errors import PagewiseError
from .imports import import_project_file
from .models import Project, Role


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


class ImportApi(APIView):
    """Upload a .jsonl or .zip; all or nothing, with every problem listed (lead only)."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request=inline_serializer("ImportUpload", {"file": serializers.FileField()}),
        responses={
            201: inline_serializer(
                "ImportResult",
                {
                    "queries_created": serializers.IntegerField(),
                    "items_created": serializers.IntegerField(),
                    "images_stored": serializers.IntegerField(),
                    "ignored_members": serializers.ListField(
                        child=serializers.CharField(),
                        help_text="Zip members no line names (the first 50): not read, not stored.",
                    ),
                    "ignored_members_total": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request, slug: str):
        project = selectors.project_for(user=request.user, slug=slug, roles=(Role.LEAD,))
        upload = request.FILES.get("file")
        if upload is None:
            raise PagewiseError(
                "Send the file as multipart form field 'file'.", fields={"file": ["missing"]}
            )
        result = import_project_file(
            project=project, file=upload, filename=upload.name, user=request.user
        )
        return Response(result.__dict__, status=status.HTTP_201_CREATED)
