"""Labeling data: projects and their members, queries, items, candidate pages, tasks, judgments.

Constraints live in the database; services (labeling/services.py) hold the business rules.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from .text_checks import FORMULA_STARTS, validate_external_id, validate_storable_json

# A judgment's cost (a grade's cost times a page's items) must fit Judgment.cost (10 digits, 4
# after the point): 1000 per label x 100 items per page stays well inside it.
MAX_LABEL_COST = Decimal("1000")
MAX_PAGE_SIZE = 100


class Strategy(models.TextChoices):
    ISO_ANCHOR = "iso_anchor", "Iso-label anchor search"
    TOP_P = "top_p", "Grade the top band of each modality"
    TOP_P_CAL = "top_p_cal", "Grade the top band; calibrate modalities with a few comparisons"
    RANDOM = "random", "Grade random items"
    FULL = "full", "Grade every item"


class BudgetPolicy(models.TextChoices):
    """How iso_anchor spreads the budget over queries (active_selection.strategies.search_share)."""

    BREADTH_FIRST = "breadth_first", "Top bands first"
    PER_QUERY = "per_query", "Whole queries"


class VlmMode(models.TextChoices):
    """How the vision-language scorer reads items: one per prompt, or a whole page per prompt."""

    POINTWISE = "pointwise", "One item per prompt"
    LISTWISE = "listwise", "A page per prompt"


# A project names a model directory under PAGEWISE_VLM_ROOT: one plain name, never a path.
VLM_MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def vlm_model_dir(name: str) -> Path | None:
    """A project's model directory: `name` under PAGEWISE_VLM_ROOT, else PAGEWISE_VLM_PATH."""
    if name:
        return Path(settings.PAGEWISE_VLM_ROOT) / name
    return Path(settings.PAGEWISE_VLM_PATH) if settings.PAGEWISE_VLM_PATH else None


def default_grade_names() -> list[str]:
    return ["Not relevant", "Marginal", "Relevant", "Highly relevant", "Perfect"]


def default_modalities() -> list[str]:
    return ["text", "image"]


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    grade_names = models.JSONField(
        default=default_grade_names,
        validators=[validate_storable_json],
        help_text="Names of grades 0..n-1, lowest first.",
    )
    modalities = models.JSONField(default=default_modalities, validators=[validate_storable_json])
    page_size = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(2), MaxValueValidator(MAX_PAGE_SIZE)]
    )
    top_band = models.PositiveSmallIntegerField(
        default=3, help_text="Items per modality taken from the top of its upstream list (top-p)."
    )
    grade_cost = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal("0.10"),
        validators=[MaxValueValidator(MAX_LABEL_COST)],
        help_text="Cost of one item grade.",
    )
    compare_cost = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal("0.05"),
        validators=[MaxValueValidator(MAX_LABEL_COST)],
        help_text="Cost of one comparison.",
    )
    currency = models.CharField(max_length=3, default="USD")
    budget = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("100.00"))
    strategy = models.CharField(
        max_length=16, choices=Strategy.choices, default=Strategy.ISO_ANCHOR
    )
    budget_policy = models.CharField(
        max_length=16,
        choices=BudgetPolicy.choices,
        default=BudgetPolicy.BREADTH_FIRST,
        help_text="How the iso-label anchor search spreads the budget over queries.",
    )
    retrain_threshold = models.PositiveIntegerField(
        default=50,
        help_text="New labels (grades + pairs) since the last version that trigger a retrain.",
    )
    judgments_per_task = models.PositiveSmallIntegerField(default=1)
    overlap_comparisons = models.BooleanField(
        default=False,
        help_text="Comparisons also get judgments_per_task judgments (otherwise one each); the "
        "search records a comparison once all of its answers are in.",
    )
    vlm_model = models.CharField(
        max_length=100,
        blank=True,
        help_text="Model directory under PAGEWISE_VLM_ROOT; blank: the server's PAGEWISE_VLM_PATH.",
    )
    vlm_mode = models.CharField(max_length=12, choices=VlmMode.choices, default=VlmMode.POINTWISE)
    vlm_upstream = models.BooleanField(
        default=False,
        help_text="Items imported without an upstream score get the vision-language scorer's.",
    )
    vlm_baseline = models.BooleanField(
        default=False,
        help_text="Report the vision-language scorer alone (vlm_zero_shot) beside the baselines.",
    )
    vlm_features = models.BooleanField(
        default=False,
        help_text="The reranker reads the scorer's expected grade and grade distribution.",
    )
    vlm_distill = models.BooleanField(
        default=False,
        help_text="The reranker learns the scorer's grade distribution on unlabelled items.",
    )
    training_settings = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_storable_json],
        help_text="Loss mix of the reranker: gamma, beta, weights.",
    )
    # The events some integration listens to, kept by it as it changes (webhooks: the events its
    # active hooks want). Read with the project, so a submit asks nobody whether anyone listens.
    listened_events = models.JSONField(default=list, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(page_size__gte=2), name="project_page_size_gte_2"),
            models.CheckConstraint(condition=Q(budget__gte=0), name="project_budget_gte_0"),
            models.CheckConstraint(
                condition=Q(grade_cost__gte=0) & Q(compare_cost__gte=0), name="project_costs_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(judgments_per_task__gte=1), name="project_judgments_per_task_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(strategy__in=Strategy.values), name="project_strategy_valid"
            ),
            models.CheckConstraint(
                condition=Q(budget_policy__in=BudgetPolicy.values),
                name="project_budget_policy_valid",
            ),
            models.CheckConstraint(
                condition=Q(vlm_mode__in=VlmMode.values), name="project_vlm_mode_valid"
            ),
            models.CheckConstraint(
                # A name, not a path: no separators and no "." or ".." (see VLM_MODEL_NAME_PATTERN).
                condition=~Q(vlm_model__contains="/")
                & ~Q(vlm_model__contains="\\")
                & ~Q(vlm_model__startswith="."),
                name="project_vlm_model_is_a_name",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def max_grade(self) -> int:
        return len(self.grade_names) - 1

    @property
    def vlm_model_dir(self) -> Path | None:
        """The vision-language model directory this project uses, or None when none is set."""
        return vlm_model_dir(self.vlm_model)

    @property
    def uses_vlm(self) -> bool:
        return self.vlm_upstream or self.vlm_baseline or self.vlm_features or self.vlm_distill


class Role(models.TextChoices):
    LEAD = "lead", "Project lead"
    ANNOTATOR = "annotator", "Annotator"
    SCIENTIST = "scientist", "Data scientist"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} · {self.project}"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    GOLD = "gold", "Gold (quality measurement only)"


def safe_external_id() -> Q:
    """The part of text_checks.external_id_problem a database can check on every backend: no
    leading formula character, no space, tab or line break (the TREC files split on them)."""
    condition = Q(external_id__gt="")
    for char in FORMULA_STARTS:
        condition &= ~Q(external_id__startswith=char)
    for char in (" ", "\t", "\n", "\r"):
        condition &= ~Q(external_id__contains=char)
    return condition


class Query(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="queries")
    external_id = models.CharField(max_length=200, validators=[validate_external_id])
    text = models.TextField()
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.TRAIN)

    class Meta:
        verbose_name_plural = "queries"
        ordering = ["project", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="query_unique_id"),
            models.CheckConstraint(condition=Q(split__in=Split.values), name="query_split_valid"),
            models.CheckConstraint(condition=safe_external_id(), name="query_id_export_safe"),
        ]
        indexes = [models.Index(fields=["project", "split"])]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.text[:60]}"


def item_image_path(item: Item, filename: str) -> str:
    return f"projects/{item.project_id}/items/{filename}"


class Item(models.Model):
    """A candidate result for a query, of one modality, with its single-modal ranker's score."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200, validators=[validate_external_id])
    modality = models.CharField(max_length=32)
    title = models.CharField(max_length=500, blank=True)
    text = models.TextField(blank=True)
    image = models.ImageField(upload_to=item_image_path, blank=True, max_length=300)
    upstream_score = models.FloatField(null=True, blank=True)
    upstream_rank = models.PositiveIntegerField(
        null=True, blank=True, help_text="1 = best, within the item's query and modality."
    )
    is_score_builtin = models.BooleanField(
        default=False, help_text="The upstream score was computed by a built-in ranker."
    )
    gold_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_storable_json])

    class Meta:
        ordering = ["query", "modality", "upstream_rank"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="item_unique_id"),
            models.CheckConstraint(condition=Q(upstream_rank__gte=1), name="item_rank_gte_1"),
            models.CheckConstraint(condition=safe_external_id(), name="item_id_export_safe"),
        ]
        indexes = [models.Index(fields=["query", "modality", "upstream_rank"])]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.modality})"

    @property
    def has_image(self) -> bool:
        return bool(self.image)


class CandidatePage(models.Model):
    """An ordered set of items of one query, built from the single-modal rankers' outputs."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pages")
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="pages")
    items = models.ManyToManyField(Item, through="PageSlot", related_name="pages")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Page {self.pk} of {self.query}"


class PageSlot(models.Model):
    # No index of its own on page: both unique constraints start with it.
    page = models.ForeignKey(
        CandidatePage, on_delete=models.CASCADE, related_name="slots", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="slots")

    class Meta:
        ordering = ["page", "position"]
        constraints = [
            models.UniqueConstraint(fields=["page", "position"], name="slot_unique_position"),
            models.UniqueConstraint(fields=["page", "item"], name="slot_unique_item"),
        ]

    def __str__(self) -> str:
        return f"Slot {self.position} of page {self.page_id}"


class TaskKind(models.TextChoices):
    GRADE_PAGE = "grade_page", "Grade a page"
    COMPARE = "compare", "Compare two items"


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    LEASED = "leased", "Leased"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class Task(models.Model):
    """One unit of human work, handed out with a lease that expires."""

    # Indexed by task_queue_idx and task_unique_dedupe_key, which start with it.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="tasks", db_index=False
    )
    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    page = models.ForeignKey(
        CandidatePage, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    # anchor, other and assignee are NULL on most tasks (pages; open tasks): their indexes
    # (Meta.indexes) hold only the tasks that have one, so planning a page adds no entry to them.
    anchor = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.CASCADE, related_name="anchor_tasks",
        db_index=False,
    )  # fmt: skip
    other = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.CASCADE, related_name="other_tasks",
        db_index=False,
    )  # fmt: skip
    reason = models.CharField(max_length=300, blank=True, help_text="Why this task was chosen.")
    priority = models.IntegerField(default=0, help_text="Higher is handed out first.")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leased_tasks",
        db_index=False,
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    judgments_required = models.PositiveSmallIntegerField(default=1)
    excluded_annotators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        help_text="Annotators who must not get this task (a re-ask goes to someone else).",
    )
    # NULL (unlike "") is exempt from the unique constraint: hand-made tasks need no key.
    dedupe_key = models.CharField(  # noqa: DJ001
        max_length=200,
        null=True,
        blank=True,
        help_text="Set by task generators so that delivering the same work twice creates one task.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind=TaskKind.GRADE_PAGE) & Q(page__isnull=False))
                | (Q(kind=TaskKind.COMPARE) & Q(anchor__isnull=False) & Q(other__isnull=False)),
                name="task_kind_has_its_subject",
            ),
            models.CheckConstraint(
                condition=Q(
                    status=TaskStatus.LEASED, assignee__isnull=False, lease_expires_at__isnull=False
                )
                | ~Q(status=TaskStatus.LEASED),
                name="task_lease_has_assignee",
            ),
            models.CheckConstraint(
                condition=Q(status__in=TaskStatus.values), name="task_status_valid"
            ),
            models.UniqueConstraint(
                fields=["project", "dedupe_key"], name="task_unique_dedupe_key"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status", "-priority", "id"], name="task_queue_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="task_lease_idx"),
            models.Index(
                fields=["anchor"], condition=Q(anchor__isnull=False), name="task_anchor_idx"
            ),
            models.Index(fields=["other"], condition=Q(other__isnull=False), name="task_other_idx"),
            models.Index(
                fields=["assignee"], condition=Q(assignee__isnull=False), name="task_assignee_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"


class CompareOutcome(models.TextChoices):
    """Outcome of a comparison, told from the anchor's side (screen sides are randomised)."""

    OTHER_BETTER = "other_better", "The other item is more relevant"
    ANCHOR_BETTER = "anchor_better", "The anchor is more relevant"
    EQUAL = "equal", "Equally relevant"


class AppendOnlyError(Exception):
    pass


class Guideline(models.Model):
    """One version of a project's annotation guidelines: markdown instructions, and for each grade
    a definition and optional example items. Versions are never edited: a change is a new version,
    and each judgment names the version it was given under."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guidelines")
    version = models.PositiveIntegerField()
    instructions = models.TextField(blank=True, help_text="Markdown.")
    # [{"definition": str, "examples": [item external_id, ...]}, ...], one per grade, lowest first.
    grades = models.JSONField(default=list, blank=True, validators=[validate_storable_json])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="guideline_unique_version"),
            models.CheckConstraint(condition=Q(version__gte=1), name="guideline_version_gte_1"),
        ]

    def __str__(self) -> str:
        return f"Guidelines v{self.version} of {self.project}"


class Judgment(models.Model):
    """An annotator's answer to a task. Append-only: a correction is a new judgment."""

    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="judgments")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments"
    )
    client_uuid = models.UUIDField(unique=True, default=uuid.uuid4)
    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    # NULL for grade_page judgments; the check constraint below ties it to the kind.
    outcome = models.CharField(  # noqa: DJ001
        max_length=16, choices=CompareOutcome.choices, null=True, blank=True
    )
    cost = models.DecimalField(max_digits=10, decimal_places=4)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    guideline = models.ForeignKey(
        Guideline,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="judgments",
        help_text="The guideline version the annotator was shown (None: the project had none).",
    )
    # A revision is a new judgment of the same task by the same annotator; the one it replaces
    # stays stored. One-to-one: a judgment is superseded at most once, so revisions form a chain
    # whose end (nothing supersedes it) is the annotator's current answer.
    supersedes = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="superseded_by",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(cost__gte=0), name="judgment_cost_gte_0"),
            models.CheckConstraint(
                condition=(Q(kind=TaskKind.COMPARE) & Q(outcome__in=CompareOutcome.values))
                | (Q(kind=TaskKind.GRADE_PAGE) & Q(outcome__isnull=True)),
                name="judgment_outcome_matches_kind",
            ),
            # One first answer per annotator and task; revisions chain from it (supersedes).
            models.UniqueConstraint(
                fields=["task", "annotator"],
                condition=Q(supersedes__isnull=True),
                name="judgment_one_per_annotator_and_task",
            ),
        ]
        indexes = [models.Index(fields=["project", "created_at"])]

    def __str__(self) -> str:
        return f"Judgment {self.client_uuid} on task {self.task_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Judgments are append-only; record a new one instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Judgments are append-only and cannot be deleted.")


class AnnotatorDay(models.Model):
    """An annotator's judgments and spend in a project on one UTC day, kept by database triggers
    on every judgment written (labeling/migrations/0014): the annotator's progress reads a few
    rows per request instead of all their judgments, and no writer can forget to count."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    judgments = models.PositiveIntegerField(default=0)
    spend_units = models.BigIntegerField(default=0, help_text="Summed cost in 10^-4 units.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator", "day"], name="annotator_day_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} in {self.project_id} on {self.day}: {self.judgments}"


class ItemGrade(models.Model):
    """One item's grade within a grade_page judgment."""

    judgment = models.ForeignKey(Judgment, on_delete=models.PROTECT, related_name="grades")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="grades")
    grade = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["judgment", "item"], name="grade_unique_item"),
        ]
        indexes = [models.Index(fields=["item"])]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.grade}"


class TaskSkip(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Skip of task {self.task_id} by {self.annotator_id}"


class ImportStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImportRun(models.Model):
    """One import of a file: queued by the web or the API, run by a worker (or at once by the
    CLI). All or nothing: only a run that succeeded stored anything."""

    ACTIVE = (ImportStatus.QUEUED, ImportStatus.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=300)
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    # "checking" (reading and validating every line) or "storing" (the one write transaction).
    stage = models.CharField(max_length=10, blank=True, default="")
    # The upload as written to disk for the worker; the file is removed when the run ends.
    source_path = models.CharField(max_length=1000, blank=True, default="")
    source_bytes = models.BigIntegerField(default=0)
    rows_read = models.PositiveIntegerField(default=0)
    # The first problems found (line, field, reason), capped; problems_total counts all of them.
    problems = models.JSONField(default=list, blank=True)
    problems_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    queries_created = models.PositiveIntegerField(default=0)
    items_created = models.PositiveIntegerField(default=0)
    images_stored = models.PositiveIntegerField(default=0)
    ignored_members = models.JSONField(default=list, blank=True)
    ignored_members_total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    task_id = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status}, {self.items_created} items)"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class Adjudication(models.Model):
    """The lead's final grade for an item whose annotators disagreed; it overrides their median."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="adjudications")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="adjudication")
    grade = models.PositiveSmallIntegerField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Adjudication of item {self.item_id}: {self.grade}"


class TallyFigures(models.Model):
    """The figures of a project's tally (labeling.tally.FIGURES)."""

    # Judgment costs summed, in 10^-4 units (labeling.money.SCALE): integers sum exactly.
    spent_units = models.BigIntegerField(default=0)
    # What open and leased tasks still need: comparisons, and grades (one per item of the page)
    # times the judgments each task still misses.
    compare_units = models.BigIntegerField(default=0)
    grade_units = models.BigIntegerField(default=0)
    pending_tasks = models.BigIntegerField(default=0)
    items = models.BigIntegerField(default=0)
    train_items = models.BigIntegerField(default=0)
    # Distinct training items with a current grade (not superseded by a revision) or an
    # adjudication: selectors.human_graded_item_count(split=train).
    graded_train_items = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class ProjectTally(TallyFigures):
    """A project's running figures, kept by database triggers (migration 0015) on every write to
    tasks, judgments, grades, adjudications, slots, items and queries, so that the dashboard reads
    one row instead of aggregating over the whole project. Never written from Python;
    `labeling.tally.counted_figures` recounts the same figures directly (tests compare them).
    On PostgreSQL the triggers add to the project's TallyShard rows instead (migration 0017)."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="tally"
    )

    def __str__(self) -> str:
        return f"Tally of project {self.project_id}"


class TallyShard(TallyFigures):
    """A share of a project's tally that PostgreSQL's triggers add to, one per database session
    (its backend pid modulo TALLY_SHARDS), read summed with the ProjectTally row. With one row,
    every submit to a project locked it from its first write until its commit, so concurrent
    submits queued on it (the judgment's INSERT waited 8-20 ms on average, 20 annotators).
    SQLite, which has one writer at a time, adds to the ProjectTally row.

    `project_id` is no foreign key: deleting a project deletes its rows first, and their triggers
    add to its shards as they go; a trigger on the project's delete removes them."""

    project_id = models.BigIntegerField()
    shard = models.SmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project_id", "shard"], name="tally_shard_uniq")
        ]

    def __str__(self) -> str:
        return f"Tally shard {self.shard} of project {self.project_id}"
