"""Ranking data: the per-item embedding cache and the trained reranker versions."""

from __future__ import annotations

import numpy as np
from django.db import models
from django.db.models import Q

from labeling.models import Item, Project, Query


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(data: bytes | memoryview | None) -> np.ndarray | None:
    return None if data is None else np.frombuffer(bytes(data), dtype=np.float32)


class ItemEmbedding(models.Model):
    """An item's encoder outputs, computed once; the encoder's name and version say which weights."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="embedding")
    text_vector = models.BinaryField()
    image_vector = models.BinaryField(null=True)
    # ImageNet class probabilities of the image: what the built-in image ranker scores from.
    class_probs = models.BinaryField(null=True)
    text_encoder = models.CharField(max_length=120)
    image_encoder = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Embedding of item {self.item_id} ({self.text_encoder})"


class QueryEmbedding(models.Model):
    query = models.OneToOneField(Query, on_delete=models.CASCADE, related_name="embedding")
    vector = models.BinaryField()
    text_encoder = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Embedding of query {self.query_id}"


class RerankerVersion(models.Model):
    """A trained whole-page reranker with what it was trained on and its quality on the gold set."""

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired (a newer version is active)"
        REJECTED = "rejected", "Rejected (worse on gold than the active one)"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reranker_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRAINING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    graded_items = models.PositiveIntegerField(default=0)
    pairs_human = models.PositiveIntegerField(default=0)
    pairs_implied = models.PositiveIntegerField(default=0)
    labels_used = models.PositiveIntegerField(
        default=0, help_text="Graded items + human and implied pairs."
    )
    cost_spent = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    gold_ndcg10 = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    training = models.JSONField(
        default=dict, blank=True, help_text="Epochs, seconds, loss weights."
    )
    weights_path = models.CharField(max_length=400, blank=True)
    message = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of the worker training this version (its lease on the row).",
    )

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="version_unique_number"),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status="active"),
                name="version_one_active_per_project",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status="training"),
                name="version_one_training_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} reranker v{self.number} ({self.status})"

    @property
    def ndcg_gain(self) -> str:
        """The gain of `gold_ndcg10` and of every `ndcg@k` in `metrics` (2^g - 1 unless said)."""
        return (self.metrics or {}).get("ndcg_gain", "exponential")

    @property
    def gold_trec_ndcg10(self) -> float | None:
        """trec_eval's nDCG@10 (linear gain) on the same queries; None for older versions."""
        value = (self.metrics or {}).get("trec_ndcg@10")
        return value if isinstance(value, int | float) else None


class ItemVlmScore(models.Model):
    """An item's grade distribution from the vision-language scorer, cached like embeddings.

    `scorer` names the weights, prompt and labels; `content_key` hashes what the model read (the
    query, the item's text and image, and in listwise mode the whole page), so a row whose key
    no longer matches is scored again.
    """

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="vlm_scores")
    scorer = models.CharField(max_length=200)
    mode = models.CharField(max_length=12)
    content_key = models.CharField(max_length=64)
    expected_grade = models.FloatField()
    distribution = models.BinaryField()
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "scorer", "mode"], name="vlm_score_unique_item_scorer_mode"
            ),
            models.CheckConstraint(
                condition=Q(mode__in=["pointwise", "listwise"]), name="vlm_score_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(expected_grade__gte=0), name="vlm_score_expected_grade_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"VLM score of item {self.item_id} ({self.mode})"


class VlmScoringRun(models.Model):
    """One run of the vision-language scorer over a project, with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="vlm_runs")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    scorer = models.CharField(max_length=200, blank=True)
    mode = models.CharField(max_length=12, blank=True)
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    items_scored = models.PositiveIntegerField(
        default=0, help_text="Items the model read; the rest came from the cache."
    )
    seconds = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(items_done__lte=models.F("items_total")),
                name="vlm_run_done_lte_total",
            ),
        ]

    def __str__(self) -> str:
        return f"VLM run {self.pk} of project {self.project_id} ({self.status})"


class VlmScorerVersion(models.Model):
    """A fine-tune of the project's vision-language scorer: what it learnt from, its quality on
    gold beside its base's, and whether it became the project's scorer (like reranker versions).
    """

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired (a newer version is active)"
        REJECTED = "rejected", "Rejected (worse on gold than the scorer it was tuned from)"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="vlm_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRAINING)
    model_name = models.CharField(
        max_length=100, help_text="The fine-tuned model's directory under PAGEWISE_VLM_ROOT."
    )
    base_model = models.CharField(
        max_length=200, blank=True, help_text="Identity of the scorer it was tuned from."
    )
    graded_items = models.PositiveIntegerField(default=0)
    pairs = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    gold_ndcg10 = models.FloatField(null=True, blank=True)
    base_gold_ndcg10 = models.FloatField(null=True, blank=True)
    training = models.JSONField(default=dict, blank=True, help_text="Epochs, lr, rank, losses.")
    celery_task_id = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="vlm_version_unique_number"),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status="active"),
                name="vlm_version_one_active_per_project",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status="training"),
                name="vlm_version_one_training_per_project",
            ),
            models.CheckConstraint(
                condition=Q(steps_done__lte=models.F("steps_total")),
                name="vlm_version_steps_done_lte_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} scorer v{self.number} ({self.status})"
