"""Every webhook event reaches a real HTTP server on 127.0.0.1, signed; failures are retried and
logged; a delivery can be replayed; only http(s) URLs are accepted.

Celery runs eagerly here (the same task code, in process; a retry runs at once); the backoff on a
real worker over Redis is tested in tests/integration/test_webhooks_on_worker.py.
"""

from __future__ import annotations

import io
import json
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError
from django.urls import reverse

from active_selection import services as selection
from active_selection.models import AnchorSearch
from labeling import assignment
from labeling.errors import PagewiseError
from labeling.imports import import_project_file
from labeling.models import Item, Task, TaskStatus
from ranking.models import RerankerVersion
from ranking.services import _finish_version
from tests.active_selection.test_services import judge, make_world
from webhooks import services
from webhooks.models import Attempt, Delivery, Event, Webhook

from .receiver import start_receiver


@pytest.fixture
def receiver():
    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()


def hook_for(project, receiver, *events) -> Webhook:
    return services.create_webhook(
        project=project, url=receiver.url, events=list(events) or [e.value for e in Event][:-1]
    )


def body_of(request) -> dict:
    return json.loads(request.body)


def assert_signed(hook: Webhook, request) -> None:
    header = request.headers["Pagewise-Signature"]
    assert services.verify_signature(secret=hook.secret, header=header, body=request.body)
    tampered = request.body.replace(b"}", b" }", 1)
    assert not services.verify_signature(secret=hook.secret, header=header, body=tampered)
    assert not services.verify_signature(secret="another secret", header=header, body=request.body)


def graded_page_task(project, make_user):
    make_world(project)
    project.page_size = 6
    project.save()
    selection.create_page_tasks(project=project)
    return Task.objects.get(kind="grade_page")


def submit_leased(task, annotator, grades, capture):
    leased = assignment.claim_next_task(annotator=annotator, project=task.project)
    assert leased.pk == task.pk
    with capture(execute=True):
        judgment, created = assignment.submit_judgment(
            task=leased, annotator=annotator, client_uuid=uuid.uuid4(), grades=grades,
            duration_ms=4200,
        )  # fmt: skip
    return judgment


def test_a_stored_judgment_is_delivered_signed(
    project, make_user, receiver, django_capture_on_commit_callbacks
):
    task = graded_page_task(project, make_user)
    hook = hook_for(project, receiver, Event.JUDGMENT_STORED)
    ann = make_user("ann1", role="annotator", project=project)
    items = list(task.page.slots.order_by("position").values_list("item_id", flat=True))
    judgment = submit_leased(
        task, ann, {i: n % 3 for n, i in enumerate(items)}, django_capture_on_commit_callbacks
    )
    (request,) = receiver.wait_for(1)
    assert request.headers["X-Pagewise-Event"] == "judgment.stored"
    assert_signed(hook, request)
    body = body_of(request)
    assert body["event"] == "judgment.stored" and body["project"]["slug"] == project.slug
    assert body["id"] == request.headers["X-Pagewise-Event-Id"]
    data = body["data"]
    assert data["judgment_id"] == judgment.pk and data["annotator"] == "ann1"
    assert data["duration_ms"] == 4200 and data["kind"] == "grade_page"
    assert data["grades"] == {
        Item.objects.get(pk=i).external_id: n % 3 for n, i in enumerate(items)
    }
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    assert (
        delivery.latency_ms is not None and Attempt.objects.get().latency_ms == delivery.latency_ms
    )


def test_a_finished_import_is_delivered(
    project, make_user, receiver, django_capture_on_commit_callbacks
):
    hook = hook_for(project, receiver, Event.IMPORT_FINISHED)
    lead = make_user("boss", role="lead", project=project)
    lines = [
        {"type": "query", "id": "q1", "text": "cat", "split": "train"},
        {"type": "item", "id": "d1", "query": "q1", "modality": "text", "title": "A cat",
         "upstream_score": 0.9},
        {"type": "item", "id": "d2", "query": "q1", "modality": "text", "title": "A dog",
         "upstream_score": 0.1},
    ]  # fmt: skip
    data = io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())
    with django_capture_on_commit_callbacks(execute=True):
        import_project_file(project=project, file=data, filename="cats.jsonl", user=lead)
    (request,) = receiver.wait_for(1)
    assert_signed(hook, request)
    body = body_of(request)
    assert body["event"] == "import.finished"
    assert body["data"]["filename"] == "cats.jsonl"
    assert (body["data"]["queries_created"], body["data"]["items_created"]) == (1, 2)
    assert body["data"]["created_by"] == "boss"


def test_an_activated_version_is_delivered_and_a_rejected_one_is_not(
    project, receiver, django_capture_on_commit_callbacks
):
    hook = hook_for(project, receiver, Event.VERSION_ACTIVATED)
    first = RerankerVersion.objects.create(project=project, number=1, gold_ndcg10=0.7)
    with django_capture_on_commit_callbacks(execute=True):
        _finish_version(first)
    worse = RerankerVersion.objects.create(project=project, number=2, gold_ndcg10=0.5)
    with django_capture_on_commit_callbacks(execute=True):
        _finish_version(worse)
    assert RerankerVersion.objects.get(number=2).status == "rejected"
    (request,) = receiver.wait_for(1)
    assert_signed(hook, request)
    data = body_of(request)["data"]
    assert (data["version"], data["gold_ndcg10"]) == (1, 0.7)


def test_a_finished_search_is_delivered(
    project, make_user, receiver, django_capture_on_commit_callbacks
):
    hook = hook_for(project, receiver, Event.SEARCH_FINISHED)
    truth = make_world(project)
    project.page_size = 6
    project.save()
    selection.create_page_tasks(project=project)
    ann = make_user("ann1")
    with django_capture_on_commit_callbacks(execute=True):
        asked = 0
        while task := Task.objects.filter(project=project, status=TaskStatus.OPEN).first():
            selection.handle_judgment(judgment_id=judge(task, ann, truth=truth).pk)
            asked += 1
            assert asked < 40
    searches = {s.pk: s for s in AnchorSearch.objects.all()}
    assert searches and all(s.status == AnchorSearch.Status.DONE for s in searches.values())
    requests = receiver.wait_for(len(searches))
    assert len(requests) == len(searches), "one delivery per finished search"
    for request in requests:
        assert_signed(hook, request)
        data = body_of(request)["data"]
        search = searches.pop(data["search_id"])
        assert data["query"] == "q0" and data["probes_answered"] == search.probes_answered
    assert not searches
    # Every judgment but the page's answered a probe or a calibration comparison (no search's).
    calibration = Task.objects.filter(
        project=project, dedupe_key__startswith=selection.CALIBRATION_KEY
    ).count()
    assert sum(body_of(r)["data"]["probes_answered"] for r in requests) == asked - 1 - calibration
    assert any(body_of(r)["data"]["pairs_implied"] > 0 for r in requests)


def test_an_exhausted_budget_is_delivered_once(
    project, make_user, receiver, django_capture_on_commit_callbacks
):
    task = graded_page_task(project, make_user)
    project.budget = Decimal("0.60")  # exactly one page of six grades at 0.10
    project.save()
    hook = hook_for(project, receiver, Event.BUDGET_EXHAUSTED, Event.JUDGMENT_STORED)
    items = list(task.page.slots.values_list("item_id", flat=True))
    ann = make_user("ann1", role="annotator", project=project)
    judgment = submit_leased(task, ann, dict.fromkeys(items, 1), django_capture_on_commit_callbacks)
    requests = receiver.wait_for(2)
    events = sorted(r.headers["X-Pagewise-Event"] for r in requests)
    assert events == ["budget.exhausted", "judgment.stored"]
    (exhausted,) = [r for r in requests if r.headers["X-Pagewise-Event"] == "budget.exhausted"]
    assert_signed(hook, exhausted)
    data = body_of(exhausted)["data"]
    assert (data["budget"], data["spent"], data["currency"]) == ("0.60", "0.60", "USD")
    # Heard again (the signal for the same judgment delivered twice): no second delivery.
    from labeling.signals import announce, judgment_recorded

    with django_capture_on_commit_callbacks(execute=True):
        announce(judgment_recorded, judgment_id=judgment.pk, project_id=project.pk)
    assert Delivery.objects.filter(event="budget.exhausted").count() == 1
    assert Delivery.objects.filter(event="judgment.stored").count() == 1


def test_a_receiver_that_fails_twice_gets_three_attempts_and_one_accepted_delivery(
    project, receiver, django_capture_on_commit_callbacks
):
    receiver.responses[:] = [500, 503]
    hook = hook_for(project, receiver, Event.VERSION_ACTIVATED)
    with django_capture_on_commit_callbacks(execute=True):
        _finish_version(RerankerVersion.objects.create(project=project, number=1, gold_ndcg10=0.6))
    requests = receiver.wait_for(3)
    assert len({r.headers["X-Pagewise-Event-Id"] for r in requests}) == 1, "one event, retried"
    for request in requests:
        assert_signed(hook, request)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 3, 200)
    log = list(delivery.attempt_log.values_list("number", "response_status"))
    assert log == [(1, 500), (2, 503), (3, 200)]
    assert "HTTP 500" in delivery.attempt_log.first().error


def test_a_delivery_that_never_succeeds_gives_up_after_the_last_attempt(
    project, settings, django_capture_on_commit_callbacks
):
    settings.PAGEWISE_WEBHOOK_MAX_ATTEMPTS = 3
    receiver, server = start_receiver()
    url = receiver.url
    server.shutdown()
    server.server_close()  # nothing listens there any more: connection refused
    hook = services.create_webhook(project=project, url=url, events=[Event.VERSION_ACTIVATED])
    with django_capture_on_commit_callbacks(execute=True):
        _finish_version(RerankerVersion.objects.create(project=project, number=1, gold_ndcg10=0.6))
    delivery = Delivery.objects.get(webhook=hook)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, None)
    assert all("refused" in a.error.lower() for a in delivery.attempt_log.all())
    assert delivery.finished_at is not None


def test_a_replay_from_the_page_sends_the_same_event_again(
    client, project, make_user, receiver, django_capture_on_commit_callbacks
):
    hook = hook_for(project, receiver, Event.VERSION_ACTIVATED)
    with django_capture_on_commit_callbacks(execute=True):
        _finish_version(RerankerVersion.objects.create(project=project, number=1, gold_ndcg10=0.6))
    original = Delivery.objects.get()
    client.force_login(make_user("boss", role="lead", project=project))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("webhook-replay", args=[project.slug, original.pk]))
    assert response.status_code == 302
    first, second = receiver.wait_for(2)
    assert first.body == second.body, "a replay sends the body of the event again"
    assert first.headers["X-Pagewise-Event-Id"] == second.headers["X-Pagewise-Event-Id"]
    assert first.headers["X-Pagewise-Delivery"] != second.headers["X-Pagewise-Delivery"]
    assert_signed(hook, second)
    replay = Delivery.objects.exclude(pk=original.pk).get()
    assert replay.replay_of_id == original.pk and replay.status == "succeeded"
    page = client.get(reverse("webhook-detail", args=[project.slug, hook.pk])).content.decode()
    assert f"replay of {original.pk}" in page and "version.activated" in page


def test_a_paused_hook_or_an_event_not_chosen_records_nothing(
    project, receiver, django_capture_on_commit_callbacks
):
    hook = hook_for(project, receiver, Event.IMPORT_FINISHED)
    paused = hook_for(project, receiver, Event.VERSION_ACTIVATED)
    services.update_webhook(webhook=paused, is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        _finish_version(RerankerVersion.objects.create(project=project, number=1, gold_ndcg10=0.6))
    assert not Delivery.objects.exists() and not receiver.requests
    assert hook.deliveries.count() == 0


@pytest.mark.parametrize(
    "url,message",
    [
        ("ftp://example.org/hook", "Only http:// and https:// URLs can receive webhooks; 'ftp'"),
        (
            "javascript:alert(1)",
            "Only http:// and https:// URLs can receive webhooks; 'javascript'",
        ),
        ("example.org/hook", "The URL must start with http:// or https://."),
        ("http:///no-host", "The URL has no host name."),
        ("http://example.org:99999/", "port is not a number"),
        ("", "Enter the URL to deliver to."),
    ],
)
def test_urls_that_are_not_http_are_refused_with_a_clear_message(
    client, project, make_user, url, message
):
    with pytest.raises(PagewiseError) as refused:
        services.create_webhook(project=project, url=url, events=[Event.JUDGMENT_STORED])
    assert message in refused.value.message
    client.force_login(make_user("boss", role="lead", project=project))
    response = client.post(
        reverse("webhooks", args=[project.slug]), {"url": url, "events": ["judgment.stored"]}
    )
    assert response.status_code == 400
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert not Webhook.objects.exists()


def test_the_database_refuses_a_hook_url_that_is_not_http(project):
    with pytest.raises(IntegrityError):
        Webhook.objects.create(project=project, url="file:///etc/passwd", events=["ping"])


def test_events_must_be_known_and_at_least_one(project):
    with pytest.raises(PagewiseError, match="Choose at least one event"):
        services.create_webhook(project=project, url="http://127.0.0.1:9/", events=[])
    with pytest.raises(PagewiseError, match="Unknown event"):
        services.create_webhook(project=project, url="http://127.0.0.1:9/", events=["everything"])


def test_an_old_signature_is_refused(project):
    hook = services.create_webhook(
        project=project, url="http://127.0.0.1:9/", events=["judgment.stored"]
    )
    header = services.sign(secret=hook.secret, timestamp=1_000_000, body=b"{}")
    assert not services.verify_signature(secret=hook.secret, header=header, body=b"{}")
    assert not services.verify_signature(secret=hook.secret, header="garbage", body=b"{}")


def test_backoff_doubles_and_is_capped(settings):
    settings.PAGEWISE_WEBHOOK_BACKOFF_SECONDS = 30
    assert [services.backoff_seconds(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert services.backoff_seconds(30) == 3600


def test_the_projects_listened_events_follow_its_hooks(project):
    def listened():
        project.refresh_from_db()
        return project.listened_events

    stored = services.create_webhook(
        project=project, url="http://127.0.0.1:9/a", events=[Event.JUDGMENT_STORED]
    )
    imported = services.create_webhook(
        project=project, url="http://127.0.0.1:9/b", events=[Event.IMPORT_FINISHED]
    )
    assert listened() == sorted([Event.JUDGMENT_STORED, Event.IMPORT_FINISHED])
    services.update_webhook(webhook=imported, is_active=False)
    assert listened() == [Event.JUDGMENT_STORED]
    services.update_webhook(webhook=stored, events=[Event.BUDGET_EXHAUSTED])
    assert listened() == [Event.BUDGET_EXHAUSTED]
    imported.is_active = True  # saved as the admin saves it
    imported.save()
    assert listened() == sorted([Event.BUDGET_EXHAUSTED, Event.IMPORT_FINISHED])
    stored.delete()
    imported.delete()
    assert listened() == []


def test_a_submit_asks_no_one_whether_a_hook_listens(
    project, make_user, django_capture_on_commit_callbacks
):
    # The project read with the task under its lock carries what its hooks listen to.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    task = graded_page_task(project, make_user)
    ann = make_user("ann1", role="annotator", project=project)
    items = list(task.page.slots.order_by("position").values_list("item_id", flat=True))
    with CaptureQueriesContext(connection) as queries:
        submit_leased(task, ann, dict.fromkeys(items, 1), django_capture_on_commit_callbacks)
    assert not [q["sql"] for q in queries if "webhooks_webhook" in q["sql"]]
    assert not Delivery.objects.exists()
    # With a hook listening, the same submit is delivered: test_a_stored_judgment_is_delivered_signed.
