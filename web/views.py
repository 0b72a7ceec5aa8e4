"""HTML pages of labeling."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from labeling import assignment, errors, guidelines, selectors

from .api_tasks import EMPTY_MESSAGE


@login_required
def home(request):
    projects = list(selectors.projects_for(user=request.user))
    roles = dict(request.user.memberships.values_list("project_id", "role"))
    for project in projects:
        project.role = "lead" if request.user.is_superuser else roles.get(project.pk)
        project.can_annotate = project.role in assignment.ANNOTATING_ROLES
        project.progress = (
            assignment.annotator_progress(annotator=request.user, project=project)
            if project.can_annotate
            else None
        )
    return render(request, "labeling/home.html", {"projects": projects})


@login_required
def annotate(request, slug: str):
    """The judging page: a shell that fetches tasks from the JSON API and renders them in JS."""
    try:
        project = selectors.project_for(
            user=request.user, slug=slug, roles=assignment.ANNOTATING_ROLES
        )
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    progress = assignment.annotator_progress(annotator=request.user, project=project)
    guideline = guidelines.current_guideline(project=project)
    config = {
        "nextUrl": reverse("api-task-next", args=[project.slug]),
        "gradeNames": project.grade_names,
        "maxGrade": project.max_grade,
        "emptyMessage": EMPTY_MESSAGE,
        "guidelineVersion": guideline.version if guideline else None,
        # The revision endpoint without its id: annotate.js appends "<id>/".
        "judgmentUrl": reverse("api-judgment", args=["0"]).removesuffix("0/"),
    }
    return render(
        request,
        "labeling/annotate.html",
        {
            "project": project,
            "progress": progress,
            "config": config,
            "guideline": guideline,
            "guide": guidelines.guideline_payload(project=project, guideline=guideline),
            # Shown open on first entry and after each new version, until a judgment is given
            # under it.
            "guideline_is_new": guideline is not None
            and not guideline.judgments.filter(annotator=request.user).exists(),
        },
    )
