"""Webhooks: URLs a lead registers per project, and the log of every delivery and attempt.

A delivery is one event for one hook, its JSON body fixed when the event happened (a replay sends
the same body again, under the same event id); each HTTP request made for it is an attempt.
"""

from __future__ import annotations

import json
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Project


class Event(models.TextChoices):
    JUDGMENT_STORED = "judgment.stored", "Judgment stored"
    IMPORT_FINISHED = "import.finished", "Import finished"
    VERSION_ACTIVATED = "version.activated", "Reranker version activated"
    BUDGET_EXHAUSTED = "budget.exhausted", "Budget exhausted"
    SEARCH_FINISHED = "search.finished", "Anchor search finished"
    PING = "ping", "Test delivery (sent from the webhooks page)"


SUBSCRIBABLE_EVENTS = [e for e in Event if e != Event.PING]


def new_secret() -> str:
    return secrets.token_hex(32)


class Webhook(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event names this hook receives.")
    secret = models.CharField(max_length=64, default=new_secret)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(url__startswith="http://") | Q(url__startswith="https://"),
                name="webhook_url_is_http",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.url} ({self.project})"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed (no attempts left)"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=Event.choices)
    event_id = models.UUIDField(default=uuid.uuid4, help_text="The same for a replay.")
    # Makes one event produce one delivery per hook, however often its signal is heard (NULL for
    # replays and test deliveries, which are exempt from the unique constraint).
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "dedupe_key"], name="delivery_unique_dedupe_key"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]),
                name="delivery_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["webhook", "-created_at"], name="delivery_log_idx")]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook.url} ({self.status})"

    @property
    def pretty_payload(self) -> str:
        return json.dumps(self.payload, indent=2, sort_keys=True)


class Attempt(models.Model):
    """One HTTP request of a delivery: what came back (or the error) and how long it took."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    latency_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of delivery {self.delivery_id}"

    @property
    def is_success(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300
