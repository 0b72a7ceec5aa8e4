"""REST API for leads and data scientists: members, settings, judgments, exports, reranker
versions and the dashboard summary. Each view names the roles that may read and write; the
project is resolved once per request by `labeling.selectors.project_for` (404 for non-members).
"""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors
from labeling.models import (
    MAX_LABEL_COST,
    MAX_PAGE_SIZE,
    VLM_MODEL_NAME_PATTERN,
    BudgetPolicy,
    Judgment,
    Membership,
    Project,
    Role,
    Strategy,
    VlmMode,
)
from labeling.services import update_project_settings
from ranking.models import RerankerVersion

from . import dashboard, exports
from .exports import export_response

ALL_ROLES = (Role.LEAD, Role.ANNOTATOR, Role.SCIENTIST)
LEAD_ONLY = (Role.LEAD,)
READERS = (Role.LEAD, Role.SCIENTIST)


class HasProjectRole(BasePermission):
    """Object-level rule by role: `read_roles` for safe methods, `write_roles` for the rest."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        roles = view.read_roles if request.method in SAFE_METHODS else view.write_roles
        # Raises NotFound (non-member) or PermissionDenied (wrong role): one error shape.
        view.project = selectors.project_for(
            user=request.user, slug=view.kwargs["slug"], roles=roles
        )
        return True


class ProjectScoped:
    permission_classes = [HasProjectRole]
    read_roles: tuple[str, ...] = LEAD_ONLY
    write_roles: tuple[str, ...] = LEAD_ONLY
    project: Project


# --- members ----------------------------------------------------------------------------------


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class AddMemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class ChangeRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MembersApi(ProjectScoped, APIView):
    """The project's members and their roles (project leads)."""

    @extend_schema(responses=MemberSerializer(many=True), summary="List members (lead)")
    def get(self, request, slug: str):
        members = dashboard.members_of(project=self.project)
        return Response(MemberSerializer(members, many=True).data)

    @extend_schema(
        request=AddMemberSerializer,
        responses={201: MemberSerializer},
        summary="Add an existing user with a role (lead)",
    )
    def post(self, request, slug: str):
        data = AddMemberSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = dashboard.add_existing_member(project=self.project, **data.validated_data)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberApi(ProjectScoped, APIView):
    """One member of the project, by username (project leads)."""

    @extend_schema(
        request=ChangeRoleSerializer, responses=MemberSerializer, summary="Change a role (lead)"
    )
    def patch(self, request, slug: str, username: str):
        data = ChangeRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = dashboard.change_role(
            project=self.project, username=username, role=data.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(responses={204: None}, summary="Remove a member (lead)")
    def delete(self, request, slug: str, username: str):
        dashboard.remove_member(project=self.project, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- settings ---------------------------------------------------------------------------------


class ProjectSettingsSerializer(serializers.Serializer):
    grade_names = serializers.ListField(
        child=serializers.CharField(max_length=60, trim_whitespace=True),
        min_length=2,
        max_length=11,
        help_text="Names of grades 0..n-1, lowest first (2 to 11 grades).",
    )
    grade_cost = serializers.DecimalField(
        max_digits=10, decimal_places=4, min_value=0, max_value=MAX_LABEL_COST,
        help_text="Cost of one item grade.",
    )  # fmt: skip
    compare_cost = serializers.DecimalField(
        max_digits=10, decimal_places=4, min_value=0, max_value=MAX_LABEL_COST,
        help_text="Cost of one comparison.",
    )  # fmt: skip
    currency = serializers.RegexField(
        r"^[A-Z]{3}$",
        error_messages={"invalid": "Use a three-letter currency code such as USD or EUR."},
    )
    budget = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    strategy = serializers.ChoiceField(choices=Strategy.choices)
    budget_policy = serializers.ChoiceField(
        choices=BudgetPolicy.choices,
        help_text="How the iso-label anchor search spreads the budget over queries: "
        "breadth_first (the top band of every query first, then searches) or per_query (each "
        "query's page keeps its searches' expected cost back).",
    )
    page_size = serializers.IntegerField(min_value=2, max_value=MAX_PAGE_SIZE)
    top_band = serializers.IntegerField(
        min_value=1, max_value=100, help_text="Items per modality from the top of its list."
    )
    retrain_threshold = serializers.IntegerField(min_value=1, max_value=1_000_000)
    judgments_per_task = serializers.IntegerField(min_value=1, max_value=10)
    vlm_model = serializers.RegexField(
        VLM_MODEL_NAME_PATTERN,
        allow_blank=True,
        max_length=100,
        help_text="Vision-language model: a directory name under the server's PAGEWISE_VLM_ROOT; "
        "blank for the server's PAGEWISE_VLM_PATH.",
        error_messages={
            "invalid": "Name one model directory (letters, digits, '.', '_', '-'), not a path."
        },
    )
    vlm_mode = serializers.ChoiceField(
        choices=VlmMode.choices,
        help_text="pointwise (one item per prompt) or listwise (a page per prompt).",
    )
    overlap_comparisons = serializers.BooleanField(
        help_text="Comparisons also get judgments_per_task judgments (otherwise one each)."
    )
    vlm_upstream = serializers.BooleanField(
        help_text="Items imported without an upstream score get the vision-language scorer's."
    )
    vlm_baseline = serializers.BooleanField(
        help_text="Report the scorer alone (vlm_zero_shot) beside the label-free baselines."
    )
    vlm_features = serializers.BooleanField(
        help_text="The reranker reads the scorer's expected grade and grade distribution."
    )
    vlm_distill = serializers.BooleanField(
        help_text="The reranker learns the scorer's grade distribution on unlabelled items "
        "(weight chosen on validation queries)."
    )

    def validate_grade_names(self, names: list[str]) -> list[str]:
        if any(not name for name in names):
            raise serializers.ValidationError("Grade names cannot be empty.")
        if len({name.casefold() for name in names}) != len(names):
            raise serializers.ValidationError("Grade names must differ from each other.")
        return names


class ProjectSettingsApi(ProjectScoped, APIView):
    """The project's grade scale, costs, budget and selection settings."""

    read_roles = ALL_ROLES

    @extend_schema(responses=ProjectSettingsSerializer, summary="Read settings (members)")
    def get(self, request, slug: str):
        return Response(ProjectSettingsSerializer(self.project).data)

    @extend_schema(
        request=ProjectSettingsSerializer,
        responses=ProjectSettingsSerializer,
        summary="Change settings (lead); send only the fields to change",
    )
    def patch(self, request, slug: str):
        data = ProjectSettingsSerializer(self.project, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        project = update_project_settings(project=self.project, changes=data.validated_data)
        return Response(ProjectSettingsSerializer(project).data)


# --- judgments --------------------------------------------------------------------------------


class JudgmentSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    grades = serializers.SerializerMethodField()

    class Meta:
        model = Judgment
        fields = [
            "id", "client_uuid", "task", "kind", "outcome", "annotator", "cost", "duration_ms",
            "created_at", "grades",
        ]  # fmt: skip

    def get_grades(self, judgment: Judgment) -> dict[str, int]:
        return {g.item.external_id: g.grade for g in judgment.grades.all()}

    def to_representation(self, judgment):
        data = super().to_representation(judgment)
        if self.context.get("blind"):
            # An annotator who remembers their choice would learn which side was the anchor.
            data["outcome"] = None
        return data


class JudgmentListApi(ProjectScoped, ListAPIView):
    """Judgments of the project, newest first, paginated. Annotators see only their own."""

    read_roles = ALL_ROLES
    serializer_class = JudgmentSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=["grade_page", "compare"]),
            OpenApiParameter("annotator", str, description="Username (leads and scientists)."),
        ],
        summary="List judgments (lead, scientist; annotators: their own)",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        judgments = (
            Judgment.objects.filter(project=self.project)
            .select_related("annotator")
            .prefetch_related("grades__item")
            .order_by("-created_at", "-pk")
        )
        role = selectors.role_of(user=self.request.user, project=self.project)
        if role == Role.ANNOTATOR:
            judgments = judgments.filter(annotator=self.request.user)
        elif username := self.request.query_params.get("annotator"):
            judgments = judgments.filter(annotator__username=username)
        if kind := self.request.query_params.get("kind"):
            judgments = judgments.filter(kind=kind)
        return judgments

    def get_serializer_context(self):
        role = selectors.role_of(user=self.request.user, project=self.project)
        return {**super().get_serializer_context(), "blind": role == Role.ANNOTATOR}


# --- exports, versions, dashboard -------------------------------------------------------------


class ExportApi(ProjectScoped, APIView):
    """Stream an export (lead, scientist). Formats: judgments-jsonl, judgments-csv, qrels, pairs,
    run, weights. The file name carries the project slug and a UTC timestamp."""

    read_roles = READERS

    @extend_schema(
        parameters=[
            OpenApiParameter("format_name", str, OpenApiParameter.PATH, enum=list(exports.FORMATS))
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The export as a streamed file download."
            )
        },
        summary="Download an export (lead, scientist)",
    )
    def get(self, request, slug: str, format_name: str):
        return export_response(exports.prepare_export(project=self.project, name=format_name))


class RerankerVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    graded_items = serializers.IntegerField()
    pairs_human = serializers.IntegerField()
    pairs_implied = serializers.IntegerField()
    labels_used = serializers.IntegerField()
    cost_spent = serializers.DecimalField(max_digits=12, decimal_places=4)
    gold_ndcg10 = serializers.FloatField(
        allow_null=True, help_text="NDCG@10 on gold with the gain named by ndcg_gain."
    )
    ndcg_gain = serializers.CharField(
        help_text="Gain of gold_ndcg10 and metrics' ndcg@k: exponential (2^grade - 1)."
    )
    gold_trec_ndcg10 = serializers.FloatField(
        allow_null=True,
        help_text="trec_eval's nDCG@10 (linear gain, its tie-break, every gold query): what "
        "trec_eval or ir_measures report on the exported qrels and run (gold queries).",
    )
    metrics = serializers.JSONField()


class RerankerVersionListApi(ProjectScoped, APIView):
    """Trained reranker versions, newest first, with cost and quality on the gold set."""

    read_roles = ALL_ROLES

    @extend_schema(responses=RerankerVersionSerializer(many=True), summary="List reranker versions")
    def get(self, request, slug: str):
        versions = RerankerVersion.objects.filter(project=self.project).order_by("-number")
        return Response(RerankerVersionSerializer(versions, many=True).data)


class DashboardApi(ProjectScoped, APIView):
    """Budget, spend by label type, savings, quality against cost, search progress, throughput
    and agreement (ordinal Krippendorff's alpha on grades; percent agreement on comparisons)."""

    read_roles = (Role.LEAD, Role.SCIENTIST)

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT}, summary="Dashboard summary (lead, scientist)"
    )
    def get(self, request, slug: str):
        return Response(_plain(dashboard.dashboard_summary(project=self.project)))


def _plain(value):
    """Money stays exact: Decimals become strings, as in the other serializers."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
