"""REST API of the annotator's workflow: claim the next task, submit a judgment, skip a task.

Only members with the role annotator (or lead) may judge; nobody sees other annotators' answers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db.models import Subquery
from django.urls import reverse
from django.utils.text import Truncator
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import assignment, guidelines, history, selectors
from labeling.errors import Conflict, PagewiseError
from labeling.guidelines import GUIDELINE_NOW, with_current_guideline
from labeling.models import Item, Project, Role, Task, TaskKind
from labeling.prepared import TEXT, PreparedInstances

SNIPPET_CHARS = 320
FULL_TEXT_CHARS = 20_000
EMPTY_MESSAGE = (
    "No tasks right now — the search creates new comparisons as judgments come in; check back soon."
)


# --- serializers (payload shapes; also what /api/schema/ documents) --------------------------


class TaskItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    position = serializers.IntegerField(allow_null=True, help_text="Place on the page (0 = top).")
    modality = serializers.CharField()
    title = serializers.CharField(allow_blank=True)
    snippet = serializers.CharField(allow_blank=True, help_text="The start of the item's text.")
    text = serializers.CharField(
        allow_blank=True, help_text="The item's whole text (cut at 20,000 characters)."
    )
    source_url = serializers.URLField(
        allow_null=True, help_text="The item's http(s) source URL from its metadata, if any."
    )
    image_url = serializers.URLField(allow_null=True)


class TaskQuerySerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The query's id from the import.")
    text = serializers.CharField()


class TaskPayloadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=TaskKind.choices)
    reason = serializers.CharField(
        allow_blank=True,
        help_text=(
            "Why this task was chosen: for the project's leads only, empty for annotators (a "
            "comparison is blind: nothing says which side is the anchor or its grade)."
        ),
    )
    lease_expires_at = serializers.DateTimeField()
    query = TaskQuerySerializer()
    items = TaskItemSerializer(
        many=True,
        help_text="grade_page: the page's items in page order. compare: [left, right] on screen.",
    )
    sides = serializers.CharField(
        allow_null=True,
        help_text="compare only: send it back with the choice (it says which item is on which side).",
    )
    submit_url = serializers.CharField()
    skip_url = serializers.CharField()


class AnnotatorProgressSerializer(serializers.Serializer):
    judgments_today = serializers.IntegerField()
    judgments_total = serializers.IntegerField()
    tasks_remaining = serializers.IntegerField(
        help_text="Counted up to a cap (see is_remaining_capped): a bar needs no exact figure."
    )
    is_remaining_capped = serializers.BooleanField(
        help_text="True when there are at least tasks_remaining tasks left (the count's cap)."
    )
    percent_done = serializers.IntegerField()
    spend = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()


class TaskProjectSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    grade_names = serializers.ListField(child=serializers.CharField())
    max_grade = serializers.IntegerField()


class NextTaskSerializer(serializers.Serializer):
    task = TaskPayloadSerializer(allow_null=True, help_text="null when there is no work right now.")
    message = serializers.CharField(allow_blank=True)
    project = TaskProjectSerializer()
    progress = AnnotatorProgressSerializer()
    guideline_version = serializers.IntegerField(
        allow_null=True,
        help_text="The project's current guideline version (null: none written); send it back "
        "with the judgment.",
    )


class SubmitJudgmentSerializer(serializers.Serializer):
    client_uuid = serializers.UUIDField(
        help_text="Made by the client once per judgment; a retry sends the same one."
    )
    grades = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=1000),
        required=False,
        help_text="grade_page: {item_id: grade} for every item of the page.",
    )
    choice = serializers.ChoiceField(
        choices=assignment.SCREEN_CHOICES,
        required=False,
        help_text="compare: the more relevant side as shown on screen, or equal.",
    )
    sides = serializers.CharField(
        required=False, max_length=1000, help_text="compare: the token that came with the task."
    )
    duration_ms = serializers.IntegerField(
        min_value=0, max_value=assignment.MAX_DURATION_MS, default=0
    )
    guideline_version = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        required=False,
        allow_null=True,
        help_text="The guideline version shown with the task (next task's guideline_version); "
        "omitted: the current one.",
    )

    def validate(self, attrs):
        has_grades, has_choice = "grades" in attrs, "choice" in attrs
        if has_grades == has_choice:
            raise serializers.ValidationError(
                "Send either grades (to grade a page) or choice and sides (to compare)."
            )
        if has_choice and not attrs.get("sides"):
            raise serializers.ValidationError({"sides": ["required with choice"]})
        return attrs


class SubmittedJudgmentSerializer(serializers.Serializer):
    """The stored judgment (what submit and revise answer; `judgment_body` builds it)."""

    id = serializers.IntegerField()
    client_uuid = serializers.UUIDField()
    task = serializers.IntegerField()
    kind = serializers.CharField()
    outcome = serializers.CharField(
        allow_null=True,
        help_text=(
            "compare: told from the anchor's side, for the project's leads only (null for "
            "annotators: it would tell them which side was the anchor)."
        ),
    )
    grades = serializers.DictField(child=serializers.IntegerField(), help_text="{item_id: grade}")
    cost = serializers.DecimalField(max_digits=10, decimal_places=4)
    duration_ms = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    guideline_version = serializers.IntegerField(allow_null=True)
    supersedes = serializers.IntegerField(
        allow_null=True, help_text="The judgment this one revises."
    )


class SkipResultSerializer(serializers.Serializer):
    task = serializers.IntegerField()
    skipped = serializers.BooleanField()


# --- payload building -----------------------------------------------------------------------


# The hot path renders its answers with these fields' own formatting, made once (a serializer
# made per request costs more than the rest of the answer).
_DATETIME = serializers.DateTimeField()
_SPEND = AnnotatorProgressSerializer().fields["spend"]
_COST = SubmittedJudgmentSerializer().fields["cost"]
# Submits and revisions validate with one serializer, its fields built once (made per request, it
# cost a quarter of a submit's CPU): validating keeps no state on it, so threads can share it.
_ANSWER = SubmitJudgmentSerializer()


def _chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else Truncator(text).chars(limit)


def item_payload(request, item: Item, position: int | None) -> dict:
    return {
        "id": item.pk,
        "position": position,
        "modality": item.modality,
        "title": item.title,
        "snippet": _chars(item.text, SNIPPET_CHARS),
        # The whole text (up to FULL_TEXT_CHARS) for "show all" in place.
        "text": _chars(item.text, FULL_TEXT_CHARS),
        "source_url": source_url(item.metadata),
        "image_url": request.build_absolute_uri(item.image.url) if item.has_image else None,
    }


SOURCE_URL_KEYS = ("url", "source_url", "link")
SAFE_LINK_SCHEMES = ("http", "https")


def source_url(metadata) -> str | None:
    """The item's source URL from its metadata ("url", "source_url" or "link"), when it is an
    absolute http(s) URL; anything else (javascript:, data:, relative, too long) is not linked."""
    if not isinstance(metadata, dict):
        return None
    for key in SOURCE_URL_KEYS:
        value = metadata.get(key)
        if not isinstance(value, str) or len(value) > 2000:
            continue
        value = value.strip()
        try:
            parts = urlsplit(value)
        except ValueError:
            continue
        if parts.scheme.lower() in SAFE_LINK_SCHEMES and parts.netloc and value.isprintable():
            return value
    return None


def is_lead_of(*, user, project: Project) -> bool:
    """Whether the user leads the project: only leads learn why a task was chosen."""
    return selectors.role_of(user=user, project=project) == Role.LEAD


def task_payload(
    request, task: Task, *, is_lead: bool = False, subject: assignment.TaskSubject | None = None
) -> dict:
    """The task as the client shows it. Blind for annotators: the reason (which names the anchor,
    its grade and the search step) is left empty, and a comparison's sides are dealt at random.
    `subject`: the task's query and items, when the caller read them already."""
    subject = subject or assignment.task_subject(task=task)
    items = [item_payload(request, item, position) for item, position in subject.items]
    sides_token = None
    if task.kind == TaskKind.COMPARE:
        sides = assignment.deal_sides(task=task)
        by_id = {item["id"]: item for item in items}
        items = [by_id[sides.left_id], by_id[sides.right_id]]
        sides_token = sides.token
    return {
        "id": task.pk,
        "kind": task.kind,
        "reason": task.reason if is_lead else "",
        "lease_expires_at": _DATETIME.to_representation(task.lease_expires_at),
        "query": {"id": subject.query_external_id, "text": subject.query_text},
        "items": items,
        "sides": sides_token,
        "submit_url": reverse("api-task-submit", args=[task.pk]),
        "skip_url": reverse("api-task-skip", args=[task.pk]),
    }


def progress_payload(progress: assignment.AnnotatorProgress) -> dict:
    return {
        "judgments_today": progress.judgments_today,
        "judgments_total": progress.judgments_total,
        "tasks_remaining": progress.tasks_remaining,
        "is_remaining_capped": progress.is_remaining_capped,
        "percent_done": progress.percent_done,
        "spend": _SPEND.to_representation(progress.spend),
        "currency": progress.currency,
    }


def project_payload(project: Project) -> dict:
    return {
        "slug": project.slug,
        "name": project.name,
        "grade_names": project.grade_names,
        "max_grade": project.max_grade,
    }


def parsed_answer(request, task: Task) -> tuple[dict, str | None]:
    """The submitted (or revised) answer, validated, and the CompareOutcome its on-screen choice
    means (None when it grades a page)."""
    # Raises the ValidationError that is_valid(raise_exception=True) would.
    data = _ANSWER.run_validation(request.data)
    if "choice" not in data:
        return data, None
    if task.kind != TaskKind.COMPARE:
        raise PagewiseError(
            "A page is graded, not compared: send grades, not a choice.",
            fields={"choice": ["not allowed for a page"]},
        )
    return data, assignment.outcome_from_choice(
        task=task, choice=data["choice"], sides_token=data["sides"]
    )


def judgment_body(judgment, *, is_lead: bool) -> dict:
    """SubmittedJudgmentSerializer's shape. A judgment stored just now carries its grades and
    guideline version; one read back (a replayed submit) has them read."""
    grades = getattr(judgment, "submitted_grades", None)
    if grades is None:
        grades = dict(judgment.grades.values_list("item_id", "grade"))
    if hasattr(judgment, "guideline_version"):
        version = judgment.guideline_version
    else:
        version = judgment.guideline.version if judgment.guideline_id else None
    return {
        "id": judgment.pk,
        "client_uuid": str(judgment.client_uuid),
        "task": judgment.task_id,
        "kind": judgment.kind,
        "outcome": judgment.outcome if is_lead else None,
        "grades": {str(item_id): grade for item_id, grade in grades.items()},
        "cost": _COST.to_representation(judgment.cost),
        "duration_ms": judgment.duration_ms,
        "created_at": _DATETIME.to_representation(judgment.created_at),
        "guideline_version": version,
        "supersedes": judgment.supersedes_id,
    }


def judgment_response(request, judgment, *, created: bool, task: Task) -> Response:
    """201 with the judgment when it was stored now, 200 when it was stored before."""
    is_lead = is_lead_of(user=request.user, project=task.project)
    return Response(
        judgment_body(judgment, is_lead=is_lead),
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


# --- views ----------------------------------------------------------------------------------


def _token_user(key):
    return Subquery(Token.objects.filter(key=key).values("user_id")[:1])


# The project with the role in it of the user a token names, read as selectors.project_for reads
# it for a known user: NextTaskApi's first read, sent in the token's round trip.
_PROJECT_WITH_TOKEN_ROLE = PreparedInstances(
    lambda slug, key: with_current_guideline(
        Project.objects.filter(slug=slug).annotate(
            viewer_role=selectors.member_role(_token_user(key)), viewer_role_of=_token_user(key)
        )
    )[:1],
    extra=("viewer_role", "viewer_role_of", *GUIDELINE_NOW), slug=TEXT, key=TEXT,
)  # fmt: skip


class NextTaskApi(APIView):
    read_with_token_rows = None  # the project, when the token's round trip read it

    def read_with_token(self, key: str):
        """Sent with the token's read (web.authentication): the next task's first read."""
        return _PROJECT_WITH_TOKEN_ROLE.send(slug=self.kwargs["slug"], key=key)

    @extend_schema(
        summary="Lease the next task",
        description=(
            "Leases the best task for the caller (annotator or lead) and returns it with the "
            "query, the items and why it was chosen. Asking again while the lease runs returns "
            "the same task. `task` is null when there is no work right now."
        ),
        request=None,
        responses={200: NextTaskSerializer},
    )
    def post(self, request, slug: str):
        project = selectors.project_for(
            user=request.user, slug=slug, roles=assignment.ANNOTATING_ROLES,
            read=self.read_with_token_rows,
        )  # fmt: skip
        task, progress, subject = assignment.claim_next_task_with_progress(
            annotator=request.user, project=project
        )
        is_lead = is_lead_of(user=request.user, project=project)
        body = {
            "task": task_payload(request, task, is_lead=is_lead, subject=subject) if task else None,
            "message": "" if task else EMPTY_MESSAGE,
            "project": project_payload(project),
            "progress": progress_payload(progress),
            "guideline_version": guidelines.current_guideline_version(project=project),
        }
        return Response(body)


class SubmitJudgmentApi(APIView):
    @extend_schema(
        summary="Submit a judgment",
        description=(
            "Grades for a grade_page task, or the on-screen choice and the sides token for a "
            "compare task. Idempotent on client_uuid: 201 when stored, 200 when the same "
            "client_uuid was stored before (the stored judgment is returned, counted once)."
        ),
        request=SubmitJudgmentSerializer,
        responses={201: SubmittedJudgmentSerializer, 200: SubmittedJudgmentSerializer},
        examples=[
            OpenApiExample(
                "grade_page",
                value={
                    "client_uuid": "6f1c2f8e-0d8a-4c39-9a51-2f4f4f8f3b10",
                    "grades": {"12": 3, "13": 0},
                    "duration_ms": 8200,
                },
                request_only=True,
            ),
            OpenApiExample(
                "compare",
                value={
                    "client_uuid": "0b7d0a3e-5a0e-4f67-8d3c-6c0f3fb1f0aa",
                    "choice": "left",
                    "sides": "<the token from the task>",
                    "duration_ms": 2100,
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request, task_id: str):
        def answer(task: Task) -> assignment.Answer:
            data, outcome = parsed_answer(request, task)
            return assignment.Answer(
                client_uuid=data["client_uuid"], grades=data.get("grades"), outcome=outcome,
                duration_ms=data["duration_ms"], guideline_version=data.get("guideline_version"),
            )  # fmt: skip

        # The task is read once, locked, with its project and the caller's role (task_for's
        # refusals first, then the answer's).
        judgment, created, task = assignment.submit_answer(
            user=request.user, task_id=task_id, answer=answer
        )
        return judgment_response(request, judgment, created=created, task=task)


class SkipTaskApi(APIView):
    @extend_schema(
        summary="Skip a task",
        description="Records the skip (the caller never gets this task again) and releases it.",
        request=None,
        responses={200: SkipResultSerializer},
    )
    def post(self, request, task_id: str):
        task = assignment.task_for(user=request.user, task_id=task_id)
        assignment.skip_task(task=task, annotator=request.user)
        return Response(SkipResultSerializer({"task": task.pk, "skipped": True}).data)


# --- revising an answer and taking back a skip ------------------------------------------------


class RevisionPayloadSerializer(serializers.Serializer):
    judgment = serializers.IntegerField(
        help_text="The answer being revised (the latest of its task)."
    )
    task = TaskPayloadSerializer()
    answer = serializers.DictField(
        help_text="The current answer, for the form: grades {item_id: grade} or choice "
        "(left / right / equal, on the sides dealt in `task`)."
    )


def revision_payload(request, judgment) -> dict:
    """The task of an answer to revise, shown as when it was judged, with that answer filled in."""
    task = judgment.task
    body = task_payload(request, task, is_lead=is_lead_of(user=request.user, project=task.project))
    body["submit_url"] = reverse("api-judgment-revise", args=[judgment.pk])
    body["skip_url"] = ""
    if task.kind == TaskKind.GRADE_PAGE:
        answer = {"grades": {str(i): g for i, g in judgment.grades.values_list("item_id", "grade")}}
    else:
        left, right = (item["id"] for item in body["items"])
        better = {"anchor_better": task.anchor_id, "other_better": task.other_id}.get(
            judgment.outcome
        )
        answer = {"choice": "equal" if better is None else ("left" if better == left else "right")}
    return {"judgment": judgment.pk, "task": body, "answer": answer}


class RevisionApi(APIView):
    @extend_schema(
        summary="An answer of yours, to revise",
        description="The task as it was judged, with your current answer. Only your own, latest "
        "answer to a task can be revised.",
        responses={200: RevisionPayloadSerializer},
    )
    def get(self, request, judgment_id: str):
        judgment = history.own_judgment(annotator=request.user, judgment_id=judgment_id)
        assignment.task_for(user=request.user, task_id=judgment.task_id)
        latest = history.current_judgments(annotator=request.user, project=judgment.project)
        if not latest.filter(pk=judgment.pk).exists():
            raise Conflict(
                "This answer was revised already; revise your latest answer to this task.",
                fields={"judgment": ["superseded"]},
            )
        return Response(revision_payload(request, judgment))


class ReviseJudgmentApi(APIView):
    @extend_schema(
        summary="Revise an answer of yours",
        description=(
            "Stores a new judgment that supersedes yours (judgments are append-only; labels, "
            "pairs, searches and training read the latest). Same body as submit. 201 when "
            "stored, 200 when nothing changed or the same client_uuid was stored before. A "
            "revised answer to a search probe re-runs the search from it."
        ),
        request=SubmitJudgmentSerializer,
        responses={201: SubmittedJudgmentSerializer, 200: SubmittedJudgmentSerializer},
    )
    def post(self, request, judgment_id: str):
        judgment = history.own_judgment(annotator=request.user, judgment_id=judgment_id)
        # Roles can change after an answer: revising still needs a judging role.
        task = assignment.task_for(user=request.user, task_id=judgment.task_id)
        data, outcome = parsed_answer(request, task)
        revision, created = assignment.revise_judgment(
            judgment=judgment,
            annotator=request.user,
            client_uuid=data["client_uuid"],
            grades=data.get("grades"),
            outcome=outcome,
            duration_ms=data["duration_ms"],
            guideline_version=data.get("guideline_version"),
        )
        return judgment_response(request, revision, created=created, task=task)


class UnskipTaskApi(APIView):
    @extend_schema(
        summary="Take back a skip",
        description="The task can be handed to you again (unless it was done meanwhile).",
        request=None,
        responses={200: SkipResultSerializer},
    )
    def post(self, request, task_id: str):
        task = history.skipped_task_for(annotator=request.user, task_id=task_id)
        assignment.task_for(user=request.user, task_id=task.pk)
        assignment.unskip_task(task=task, annotator=request.user)
        return Response(SkipResultSerializer({"task": task.pk, "skipped": False}).data)
