"""Writes of webhooks: registering hooks, turning events into deliveries, sending one attempt of a
delivery (signed), replaying. Deliveries are queued after the commit and sent by a Celery task
(webhooks/tasks.py) that retries with exponential backoff; delivery is at least once, so a
receiver should drop an event id it has seen.

Signature: header `Pagewise-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over the bytes
`<t>.` followed by the raw body, keyed with the hook's secret (the scheme Stripe uses).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from celery import signature
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.errors import PagewiseError
from labeling.models import Project
from labeling.prepared import ID, Prepared

from .models import SUBSCRIBABLE_EVENTS, Attempt, Delivery, Event, Webhook, new_secret

SIGNATURE_HEADER = "Pagewise-Signature"
MAX_WEBHOOKS_PER_PROJECT = 20


# --- registering ------------------------------------------------------------------------------


def clean_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise PagewiseError("Enter the URL to deliver to.", fields={"url": ["Required."]})
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        message = (
            f"Only http:// and https:// URLs can receive webhooks; '{parts.scheme or url}' "
            "is not one of them."
            if parts.scheme
            else "The URL must start with http:// or https://."
        )
        raise PagewiseError(message, fields={"url": [message]})
    try:
        host, port = parts.hostname, parts.port  # .port raises ValueError on a bad port
    except ValueError:
        host = port = None
        message = "The URL's port is not a number between 0 and 65535."
        raise PagewiseError(message, fields={"url": [message]}) from None
    if not host:
        message = "The URL has no host name."
        raise PagewiseError(message, fields={"url": [message]})
    if len(url) > 500 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        message = "The URL must be at most 500 characters, without spaces or control characters."
        raise PagewiseError(message, fields={"url": [message]})
    del port
    return url


def clean_events(events) -> list[str]:
    chosen = [str(e) for e in events or []]
    unknown = sorted(set(chosen) - {e.value for e in SUBSCRIBABLE_EVENTS})
    if unknown:
        message = f"Unknown event(s): {', '.join(unknown)}."
        raise PagewiseError(message, fields={"events": [message]})
    if not chosen:
        message = "Choose at least one event."
        raise PagewiseError(message, fields={"events": [message]})
    return [e.value for e in SUBSCRIBABLE_EVENTS if e.value in chosen]  # in a stable order


def create_webhook(*, project: Project, url: str, events, created_by=None) -> Webhook:
    url, events = clean_url(url), clean_events(events)
    if Webhook.objects.filter(project=project).count() >= MAX_WEBHOOKS_PER_PROJECT:
        raise PagewiseError(f"A project has at most {MAX_WEBHOOKS_PER_PROJECT} webhooks.")
    return Webhook.objects.create(project=project, url=url, events=events, created_by=created_by)


def update_webhook(*, webhook: Webhook, events=None, is_active: bool | None = None) -> Webhook:
    if events is not None:
        webhook.events = clean_events(events)
    if is_active is not None:
        webhook.is_active = is_active
    webhook.save(update_fields=["events", "is_active"])
    return webhook


def rotate_secret(*, webhook: Webhook) -> str:
    webhook.secret = new_secret()
    webhook.save(update_fields=["secret"])
    return webhook.secret


# --- events -> deliveries ---------------------------------------------------------------------


def envelope(*, project: Project, event: str, event_id: str, data: dict) -> dict:
    return {
        "id": event_id,
        "event": event,
        "created_at": timezone.now().isoformat(),
        "project": {"slug": project.slug, "name": project.name},
        "data": data,
    }


# Asked after every judgment: prepared once (labeling/prepared.py).
_LISTENED = Prepared(
    lambda project: Webhook.objects.filter(project_id=project, is_active=True).values_list(
        "events"
    ),
    project=ID,
)


def listened_events(*, project_id: int) -> set[str]:
    """The events some active hook of the project wants (one query; most projects have none)."""
    return {event for (events,) in _LISTENED.rows(project=project_id) for event in events}


def keep_listened_events(*, project_id: int) -> None:
    """Write what the project's active hooks want into its `listened_events` (after any change of
    a hook), so that whoever reads the project knows without asking. The project's row is locked
    first: two hooks changed at once are counted by whichever writes last, reading after the
    other's commit."""
    with transaction.atomic():
        project = Project.objects.select_for_update().filter(pk=project_id).first()
        if project is None:
            return
        events = sorted(listened_events(project_id=project_id))
        if events != project.listened_events:
            Project.objects.filter(pk=project_id).update(listened_events=events)


def is_listening(*, project_id: int, event: str) -> bool:
    return event in listened_events(project_id=project_id)


def queue_event(
    *, project_id: int, event: str, dedupe_key: str | None, data: Callable[[], dict | None]
) -> list[Delivery]:
    """Record one delivery of the event for each active hook of the project that wants it, and
    queue their sending after the commit. `data` is called only when some hook listens (most
    projects have none: one query). A key already delivered to a hook is not delivered again."""
    import uuid

    hooks = [
        hook
        for hook in Webhook.objects.filter(project_id=project_id, is_active=True)
        if event in hook.events
    ]
    if not hooks:
        return []
    body = data()
    if body is None:
        return []
    project = hooks[0].project
    payload = envelope(project=project, event=event, event_id=str(uuid.uuid4()), data=body)
    created: list[Delivery] = []
    with transaction.atomic():
        for hook in hooks:
            try:
                with transaction.atomic():
                    delivery = Delivery.objects.create(
                        webhook=hook, event=event, event_id=payload["id"], dedupe_key=dedupe_key,
                        payload=payload,
                    )  # fmt: skip
            except IntegrityError:
                continue  # this event already went to this hook (a signal heard twice)
            created.append(delivery)
        for delivery in created:
            _send_after_commit(delivery)
    return created


def _send_after_commit(delivery: Delivery) -> None:
    # Named, not imported: webhooks.tasks runs this module's work (`attempt_delivery`).
    transaction.on_commit(signature("webhooks.tasks.deliver_webhook", args=(delivery.pk,)).delay)


def replay_delivery(*, delivery: Delivery) -> Delivery:
    """Send a logged delivery again: the same body and event id, as a new delivery."""
    with transaction.atomic():
        replay = Delivery.objects.create(
            webhook=delivery.webhook, event=delivery.event, event_id=delivery.event_id,
            payload=delivery.payload, replay_of=delivery,
        )  # fmt: skip
        _send_after_commit(replay)
    return replay


def send_ping(*, webhook: Webhook) -> Delivery:
    import uuid

    payload = envelope(
        project=webhook.project, event=Event.PING, event_id=str(uuid.uuid4()),
        data={"message": "A test delivery from the webhooks page.", "webhook": webhook.pk},
    )  # fmt: skip
    with transaction.atomic():
        delivery = Delivery.objects.create(
            webhook=webhook, event=Event.PING, event_id=payload["id"], payload=payload
        )
        _send_after_commit(delivery)
    return delivery


# --- sending ----------------------------------------------------------------------------------


def body_of(delivery: Delivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    *, secret: str, header: str, body: bytes, tolerance_seconds: int = 300
) -> bool:
    """What a receiver does (in any language): recompute the HMAC and compare in constant time;
    refuse a timestamp older than the tolerance so a captured request cannot be replayed later."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret=secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(expected, header)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect counts as a failure (as Stripe and GitHub do): the signed body goes only to the
    # URL the lead registered.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def max_attempts() -> int:
    return max(int(settings.PAGEWISE_WEBHOOK_MAX_ATTEMPTS), 1)


def backoff_seconds(attempt: int) -> float:
    """Wait before the attempt after `attempt` (1-based): base, 2×base, 4×base, ... capped."""
    base = float(settings.PAGEWISE_WEBHOOK_BACKOFF_SECONDS)
    return min(base * 2 ** (attempt - 1), 3600.0)


def attempt_delivery(*, delivery_id: int) -> Attempt | None:
    """Make one HTTP attempt of a pending delivery and log it; None when there is nothing to do
    (delivered, given up, or gone). No lock is held during the request (it can take seconds):
    two workers may both send it once in a while, which at-least-once delivery allows."""
    delivery = Delivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != Delivery.Status.PENDING:
        return None
    hook = delivery.webhook
    body = body_of(delivery)
    timestamp = int(time.time())
    request = urllib.request.Request(
        hook.url, data=body, method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Pagewise-Webhooks/1",
            "X-Pagewise-Event": delivery.event,
            "X-Pagewise-Event-Id": str(delivery.event_id),
            "X-Pagewise-Delivery": str(delivery.pk),
            SIGNATURE_HEADER: sign(secret=hook.secret, timestamp=timestamp, body=body),
        },
    )  # fmt: skip
    status, error = None, ""
    started = time.perf_counter()
    try:
        with _opener.open(request, timeout=float(settings.PAGEWISE_WEBHOOK_TIMEOUT_SECONDS)) as r:
            status = r.status
            r.read(65536)
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        error = f"{type(exc).__name__}: {reason}"
    latency = round((time.perf_counter() - started) * 1000)
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        number = locked.attempts + 1
        attempt = Attempt.objects.create(
            delivery=locked, number=number, response_status=status, error=error[:500],
            latency_ms=latency,
        )  # fmt: skip
        locked.attempts = number
        locked.response_status = status
        locked.latency_ms = latency
        if attempt.is_success:
            locked.status = Delivery.Status.SUCCEEDED
        elif number >= max_attempts():
            locked.status = Delivery.Status.FAILED
        if locked.status != Delivery.Status.PENDING:
            locked.finished_at = timezone.now()
        locked.save()
    return attempt
