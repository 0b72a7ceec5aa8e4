"""The lead's webhooks pages: register hooks, see every delivery and its attempts, replay one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from labeling import errors, selectors
from labeling.models import Project, Role

from . import services
from .models import SUBSCRIBABLE_EVENTS, Delivery, Webhook

DELIVERIES_PER_PAGE = 25


def _lead_project(request, slug: str) -> Project:
    try:
        return selectors.project_for(user=request.user, slug=slug, roles=(Role.LEAD,))
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None


def _hook(project: Project, hook_id: int) -> Webhook:
    hook = Webhook.objects.filter(project=project, pk=hook_id).first()
    if hook is None:
        raise Http404(f"No webhook {hook_id} in '{project.name}'.")
    return hook


def _context(request, project: Project, **extra) -> dict:
    role = selectors.role_of(user=request.user, project=project)
    return {"project": project, "section": "webhooks", "role": role, **extra}


@login_required
@require_http_methods(["GET", "POST"])
def webhooks_page(request, slug: str):
    project = _lead_project(request, slug)
    form = {"url": "", "events": [e.value for e in SUBSCRIBABLE_EVENTS]}
    field_errors: dict = {}
    status = 200
    if request.method == "POST":
        form = {"url": request.POST.get("url", ""), "events": request.POST.getlist("events")}
        try:
            hook = services.create_webhook(
                project=project, url=form["url"], events=form["events"], created_by=request.user
            )
        except errors.PagewiseError as exc:
            field_errors = exc.fields
            messages.error(request, exc.message)
            status = 400
        else:
            messages.success(request, f"Webhook added: {hook.url}. Its signing secret is below.")
            return redirect("webhook-detail", slug=project.slug, hook_id=hook.pk)
    hooks = list(Webhook.objects.filter(project=project))
    latest = {}
    for delivery in Delivery.objects.filter(webhook__in=hooks).order_by("webhook", "-pk"):
        latest.setdefault(delivery.webhook_id, delivery)
    for hook in hooks:
        hook.latest = latest.get(hook.pk)
    return render(
        request,
        "webhooks/list.html",
        _context(
            request, project, hooks=hooks, events=SUBSCRIBABLE_EVENTS, form=form,
            errors=field_errors,
        ),
        status=status,
    )  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def webhook_detail(request, slug: str, hook_id: int):
    project = _lead_project(request, slug)
    hook = _hook(project, hook_id)
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "update":
                services.update_webhook(
                    webhook=hook, events=request.POST.getlist("events"),
                    is_active=request.POST.get("is_active") == "on",
                )  # fmt: skip
                messages.success(request, "Webhook saved.")
            elif action == "ping":
                services.send_ping(webhook=hook)
                messages.success(request, "Test delivery queued; it appears below when sent.")
            elif action == "rotate":
                services.rotate_secret(webhook=hook)
                messages.success(request, "New secret made: update your receiver with it.")
            elif action == "delete":
                url = hook.url
                hook.delete()
                messages.success(request, f"Webhook {url} deleted with its delivery log.")
                return redirect("webhooks", slug=project.slug)
            else:
                raise errors.PagewiseError(f"Unknown action '{action[:40]}'.")
        except errors.PagewiseError as exc:
            messages.error(request, exc.message)
        return redirect("webhook-detail", slug=project.slug, hook_id=hook.pk)
    deliveries = Paginator(
        hook.deliveries.prefetch_related("attempt_log").order_by("-pk"), DELIVERIES_PER_PAGE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/detail.html",
        _context(
            request, project, hook=hook, deliveries=deliveries, events=SUBSCRIBABLE_EVENTS,
            max_attempts=services.max_attempts(), signature_header=services.SIGNATURE_HEADER,
        ),
    )  # fmt: skip


@login_required
@require_POST
def replay(request, slug: str, delivery_id: int):
    project = _lead_project(request, slug)
    delivery = (
        Delivery.objects.select_related("webhook").filter(webhook__project=project, pk=delivery_id)
    ).first()
    if delivery is None:
        raise Http404(f"No delivery {delivery_id} in '{project.name}'.")
    replayed = services.replay_delivery(delivery=delivery)
    messages.success(
        request, f"Delivery {delivery.pk} queued again as delivery {replayed.pk} (same event id)."
    )
    return redirect("webhook-detail", slug=project.slug, hook_id=delivery.webhook_id)
