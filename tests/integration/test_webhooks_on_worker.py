"""Webhook deliveries on a real Celery worker over Redis and PostgreSQL: a receiver that fails
twice gets three attempts, spaced by the exponential backoff, and one accepted delivery."""

from __future__ import annotations

import pytest
from django.db import transaction

from ranking.models import RerankerVersion
from ranking.services import _finish_version
from tests.webhooks.receiver import start_receiver
from webhooks import services
from webhooks.models import Delivery, Event

from .conftest import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BACKOFF = 0.5


def test_a_receiver_failing_twice_is_retried_with_backoff_on_the_worker(celery_workers, project):
    celery_workers.start(extra_env={"PAGEWISE_WEBHOOK_BACKOFF_SECONDS": str(BACKOFF)})
    receiver, server = start_receiver([500, 502])
    try:
        hook = services.create_webhook(
            project=project, url=receiver.url, events=[Event.VERSION_ACTIVATED]
        )
        version = RerankerVersion.objects.create(project=project, number=1, gold_ndcg10=0.6)
        with transaction.atomic():  # as the trainer does: the event leaves after the commit
            _finish_version(version)
        requests = receiver.wait_for(3, timeout=60)
        delivery = wait_for(
            lambda: Delivery.objects.filter(webhook=hook, status="succeeded").first(),
            what="the delivery to succeed",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert len(requests) == 3 and delivery.attempts == 3
    assert list(delivery.attempt_log.values_list("response_status", flat=True)) == [500, 502, 200]
    gaps = [later.at - earlier.at for earlier, later in zip(requests, requests[1:], strict=False)]
    assert gaps[0] >= BACKOFF * 0.9 and gaps[1] >= 2 * BACKOFF * 0.9, gaps
    for request in requests:
        assert services.verify_signature(
            secret=hook.secret, header=request.headers["Pagewise-Signature"], body=request.body
        )
