"""The lead's review queue page: keyboard-driven (j/k move, a digit decides the focused entry)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from labeling import errors, guidelines, selectors
from labeling.models import Role
from web import dashboard

from .selectors import counts_by_kind, review_queue


@login_required
@require_http_methods(["GET", "POST"])
def review_page(request, slug: str):
    try:
        project = selectors.project_for(user=request.user, slug=slug, roles=(Role.LEAD,))
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    if request.method == "POST":
        at = request.POST.get("at", "")
        try:
            item_id = int(request.POST.get("item", ""))
            grade = int(request.POST.get("grade", ""))
        except ValueError:
            messages.error(request, "Pick a grade for the item.")
        else:
            try:
                dashboard.adjudicate(
                    project=project, item_id=item_id, grade=grade, decided_by=request.user
                )
                messages.success(
                    request,
                    f"Final grade {grade} saved; training and the qrels use it from now on.",
                )
            except errors.PagewiseError as exc:
                messages.error(request, exc.message)
        url = reverse("lead-review", args=[project.slug])
        return redirect(f"{url}?at={at}" if at.isdigit() and len(at) < 6 else url)
    entries = review_queue(project=project)
    guideline = guidelines.current_guideline(project=project)
    return render(
        request,
        "review/queue.html",
        {
            "project": project,
            "section": "review",
            "role": Role.LEAD,
            "entries": entries,
            "counts": counts_by_kind(entries),
            "guide": guidelines.guideline_payload(project=project, guideline=guideline),
            "guideline": guideline,
            "grades": list(enumerate(project.grade_names)),
        },
    )
