"""HTML pages of labeling."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors


@login_required
def home(request):
    projects = list(selectors.projects_for(user=request.user))
    roles = dict(request.user.memberships.values_list("project_id", "role"))
    for project in projects:
        project.role = "lead" if request.user.is_superuser else roles.get(project.pk)
    return render(request, "labeling/home.html", {"projects": projects})
