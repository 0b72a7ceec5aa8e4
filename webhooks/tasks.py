"""Celery entry point of webhooks: one attempt per run, retried with exponential backoff."""

from celery import shared_task

from . import services
from .models import Delivery


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self, delivery_id: int) -> str | None:
    """Attempt the delivery; while it stays pending (failed, attempts left), retry after
    PAGEWISE_WEBHOOK_BACKOFF_SECONDS × 2^(attempt−1). The attempt count lives in the database,
    so a redelivered message never sends more attempts than allowed."""
    while True:
        attempt = services.attempt_delivery(delivery_id=delivery_id)
        if attempt is None:
            return None
        status = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
        if status != Delivery.Status.PENDING:
            return status
        if not self.request.is_eager:
            raise self.retry(countdown=services.backoff_seconds(attempt.number))
        # Run in process (tests, CELERY_TASK_ALWAYS_EAGER): no broker to wait on, try again now.
