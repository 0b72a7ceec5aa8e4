"""HTML pages around judging: the project's guidelines (read by every member, written by the
lead), the annotator's recent judgments and skips. Views parse input, call one service or
selector, and render; a refusal is a message on the page with its reason, never a 500."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling import assignment, errors, guidelines, history, selectors
from labeling.models import Role

MEMBERS = (Role.LEAD, Role.ANNOTATOR, Role.SCIENTIST)


def _project(request, slug: str, roles: tuple[str, ...]):
    try:
        return selectors.project_for(user=request.user, slug=slug, roles=roles)
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None


def _context(request, project, section: str, **extra) -> dict:
    role = selectors.role_of(user=request.user, project=project)
    return {"project": project, "section": section, "role": role, **extra}


# --- guidelines -------------------------------------------------------------------------------


def _guideline_form(project, guideline) -> dict:
    rows = list(guideline.grades) if guideline else []
    return {
        "instructions": guideline.instructions if guideline else "",
        "grades": [
            {
                "grade": grade,
                "name": name,
                "definition": (rows[grade] if grade < len(rows) else {}).get("definition", ""),
                "examples": ", ".join(
                    (rows[grade] if grade < len(rows) else {}).get("examples", [])
                ),
            }
            for grade, name in enumerate(project.grade_names)
        ],
    }


@login_required
@require_http_methods(["GET", "POST"])
def guidelines_page(request, slug: str):
    """Every member reads the current guidelines; the lead edits them (each save a new version)."""
    project = _project(request, slug, MEMBERS)
    role = selectors.role_of(user=request.user, project=project)
    current = guidelines.current_guideline(project=project)
    form = _guideline_form(project, current)
    field_errors: dict = {}
    if request.method == "POST":
        if role != Role.LEAD:
            raise DjangoPermissionDenied(
                f"Only a project lead of '{project.name}' can change its guidelines."
            )
        grades = [
            {
                "definition": request.POST.get(f"definition_{grade}", ""),
                "examples": request.POST.get(f"examples_{grade}", "").replace("\n", ",").split(","),
            }
            for grade in range(len(project.grade_names))
        ]
        try:
            saved, created = guidelines.save_guideline(
                project=project,
                instructions=request.POST.get("instructions", ""),
                grades=grades,
                created_by=request.user,
            )
        except errors.PagewiseError as exc:
            field_errors = exc.fields
            messages.error(request, exc.message)
            form["instructions"] = request.POST.get("instructions", "")
            for row in form["grades"]:
                row["definition"] = request.POST.get(f"definition_{row['grade']}", "")
                row["examples"] = request.POST.get(f"examples_{row['grade']}", "")
        else:
            messages.success(
                request,
                f"Guidelines saved as version {saved.version}; new judgments record it."
                if created
                else f"Nothing changed; version {saved.version} stays current.",
            )
            return redirect("guidelines", slug=project.slug)
    for row in form["grades"]:
        row["definition_error"] = field_errors.get(f"definition_{row['grade']}")
        row["examples_error"] = field_errors.get(f"examples_{row['grade']}")
    return render(
        request,
        "labeling/guidelines.html",
        _context(
            request, project, "guidelines",
            guideline=current,
            guide=guidelines.guideline_payload(project=project, guideline=current),
            versions=project.guidelines.order_by("-version").select_related("created_by")[:20],
            form=form, errors=field_errors, can_edit=role == Role.LEAD,
        ),
    )  # fmt: skip


# --- the annotator's history and skips --------------------------------------------------------


@login_required
def history_page(request, slug: str):
    """My recent judgments (current answers, newest first, paginated) and my open skips."""
    project = _project(request, slug, assignment.ANNOTATING_ROLES)
    page = history.history_page(
        annotator=request.user, project=project, number=request.GET.get("page")
    )
    return render(
        request,
        "labeling/history.html",
        _context(
            request, project, "history",
            page=page, skips=history.skipped_tasks(annotator=request.user, project=project),
        ),
    )  # fmt: skip


@login_required
@require_http_methods(["POST"])
def unskip(request, slug: str, task_id: str):
    """Take back a skip from the history page; the task can be handed out to me again."""
    project = _project(request, slug, assignment.ANNOTATING_ROLES)
    try:
        task = history.skipped_task_for(annotator=request.user, task_id=task_id)
        if task.project_id != project.pk:
            raise errors.NotFound("You have not skipped this task.")
        assignment.unskip_task(task=task, annotator=request.user)
    except errors.PagewiseError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Skip of task {task.pk} taken back: it can come to you again.")
    return redirect("my-judgments", slug=project.slug)
