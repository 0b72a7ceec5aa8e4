"""State of the iso-label anchor searches, and the supervision they produce (pairs, implied grades)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from labeling.models import Item, Judgment, Project, Query, Strategy


class AnchorSearch(models.Model):
    """The searches of one query from a reference modality R into another modality B.

    `state` is `active_selection.search.QuerySearch.to_state()`: one binary search per graded
    anchor of R, over B's items below its graded top band, in upstream order.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="searches")
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="searches")
    reference_modality = models.CharField(max_length=32)
    other_modality = models.CharField(max_length=32)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    state = models.JSONField()
    probes_answered = models.PositiveIntegerField(default=0)
    contradictions = models.PositiveIntegerField(default=0)
    # How much the search is expected to find: the relevant items of B's graded top band (a
    # modality rich in the top band is rich below it). Its probes are asked richest first.
    informativeness = models.PositiveSmallIntegerField(default=0)
    # Answers replaced by an annotator's revision; part of the probe tasks' dedupe keys, so a
    # probe asked again after a revision is a new task rather than the cancelled one.
    revisions = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "anchor searches"
        constraints = [
            models.UniqueConstraint(
                fields=["query", "reference_modality", "other_modality"], name="search_unique_pair"
            ),
            models.CheckConstraint(
                condition=~Q(reference_modality=F("other_modality")), name="search_two_modalities"
            ),
        ]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return f"{self.query} {self.reference_modality}→{self.other_modality} ({self.status})"


class PairSource(models.TextChoices):
    HUMAN = "human", "Judged by a human"
    IMPLIED = "implied", "Implied by a search through upstream order"
    UPSTREAM = "upstream", "Upstream order within one modality"


class PreferencePair(models.Model):
    """(better, worse) for one query, with where the preference comes from."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairs")
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="pairs")
    better = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    worse = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=8, choices=PairSource.choices)
    search = models.ForeignKey(
        AnchorSearch, null=True, blank=True, on_delete=models.CASCADE, related_name="pairs"
    )
    judgment = models.ForeignKey(
        Judgment, null=True, blank=True, on_delete=models.PROTECT, related_name="pairs"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["better", "worse", "source"], name="pair_unique"),
            models.CheckConstraint(condition=~Q(better=F("worse")), name="pair_two_items"),
            models.CheckConstraint(
                condition=Q(source__in=PairSource.values), name="pair_source_valid"
            ),
        ]
        indexes = [models.Index(fields=["project", "source"])]

    def __str__(self) -> str:
        return f"{self.better_id} > {self.worse_id} ({self.source})"


class ImpliedGrade(models.Model):
    """The grade interval a finished search implies for one item of B (exact when low == high)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="implied_grades")
    search = models.ForeignKey(
        AnchorSearch, on_delete=models.CASCADE, related_name="implied_grades"
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="implied_grades")
    low = models.PositiveSmallIntegerField()
    high = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["search", "item"], name="implied_grade_unique"),
            models.CheckConstraint(condition=Q(low__lte=F("high")), name="implied_grade_interval"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: [{self.low}, {self.high}]"


class ProbeTask(models.Model):
    """Ties a compare task to the search step it answers: anchor vs. B[position]."""

    task = models.OneToOneField("labeling.Task", on_delete=models.CASCADE, related_name="probe")
    search = models.ForeignKey(AnchorSearch, on_delete=models.CASCADE, related_name="probes")
    anchor = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(help_text="Position in the searched B list.")
    is_reask = models.BooleanField(default=False)
    is_recorded = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"Probe {self.anchor_id} vs B[{self.position}] of search {self.search_id}"


class SimulationReport(models.Model):
    """A simulation of the strategies on a world shaped like the project (the lead's settings
    page, run by a worker; or `manage.py simulate --like-project`), its progress, its results
    (the results file's dict) and the strategy that reached full annotation's quality cheapest.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    OPEN = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="simulation_reports"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # None: run from the shell
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    runs_done = models.PositiveIntegerField(default=0)
    runs_total = models.PositiveIntegerField(default=0)
    results = models.JSONField(null=True, blank=True)
    recommended_strategy = models.CharField(
        max_length=16, blank=True, help_text="Blank when no strategy reached full's NDCG@10."
    )
    error = models.TextField(blank=True)
    estimated = models.JSONField(
        default=dict, blank=True, help_text="What the world took from the project (world_like)."
    )
    celery_task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One simulation at a time per project: each holds a worker for minutes.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "running"]),
                name="simulation_one_open_per_project",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed"]),
                name="simulation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(recommended_strategy="") | Q(recommended_strategy__in=Strategy.values),
                name="simulation_recommendation_valid",
            ),
            models.CheckConstraint(
                condition=Q(runs_done__lte=F("runs_total")), name="simulation_runs_done_lte_total"
            ),
        ]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"Simulation {self.pk} of {self.project} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class CalibrationCheck(models.Model):
    """A measurement of each modality's grade offset against the reference modality, from
    cross-modal comparisons of gold items (active_selection.calibration_check)."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="calibration_checks"
    )
    reference_modality = models.CharField(max_length=32)
    # {modality: {"offset", "low", "high", "n", "correction"}} (calibration.OffsetEstimate)
    estimates = models.JSONField(default=dict)
    comparisons = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"Calibration of {self.project} against {self.reference_modality}"
