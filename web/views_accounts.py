"""HTML pages for projects and people: a new project, inviting someone with a set-password link,
setting that password, and each user's API token page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from labeling import accounts, errors
from labeling.models import Role, Strategy, default_grade_names, default_modalities

from .api_lead import ProjectSettingsSerializer
from .views_lead import LEAD_ONLY, _context, _project

NEW_PROJECT_FIELDS = [
    "grade_names",
    "grade_cost",
    "compare_cost",
    "budget",
    "page_size",
    "strategy",
]


def _new_project_initial() -> dict:
    return {
        "name": "",
        "modalities": ", ".join(default_modalities()),
        "grade_names": "\n".join(default_grade_names()),
        **{k: str(v) for k, v in accounts.DEFAULT_SETTINGS.items()},
    }


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request):
    if not accounts.can_create_projects(request.user):
        raise DjangoPermissionDenied(
            "Creating projects needs the permission “Can add project” (labeling); an "
            "administrator grants it in the admin, to you or to a group you are in."
        )
    values = _new_project_initial()
    field_errors: dict = {}
    status = 200
    if request.method == "POST":
        values = {name: request.POST.get(name, values[name]).strip() for name in values}
        data = {name: values[name] for name in NEW_PROJECT_FIELDS}
        data["grade_names"] = [
            line.strip() for line in values["grade_names"].splitlines() if line.strip()
        ]
        serializer = ProjectSettingsSerializer(data=data, partial=True)
        try:
            modalities = accounts.clean_modalities(values["modalities"])
            if not serializer.is_valid():
                field_errors = {k: [str(e) for e in v] for k, v in serializer.errors.items()}
                raise errors.PagewiseError("Some fields are not valid; nothing was created.")
            project = accounts.create_project(
                creator=request.user, name=values["name"], modalities=modalities,
                settings=dict(serializer.validated_data),
            )  # fmt: skip
        except errors.PagewiseError as exc:
            field_errors = {**exc.fields, **field_errors}
            messages.error(request, exc.message)
            status = 400
        else:
            messages.success(
                request,
                f"Project “{project.name}” created; you are its lead. Import its queries and items.",
            )
            return redirect("lead-import", slug=project.slug)
    return render(
        request,
        "labeling/lead/project_new.html",
        {"values": values, "errors": field_errors, "strategies": Strategy.choices},
        status=status,
    )


@login_required
@require_POST
def member_invite(request, slug: str):
    """Create an account for someone new, or a fresh link for a member without a password; the
    page shows the one-time set-password link for the lead to pass on."""
    project = _project(request, slug, LEAD_ONLY)
    action = request.POST.get("action", "invite")
    username = request.POST.get("username", "").strip()
    try:
        if action == "invite":
            role = request.POST.get("role", Role.ANNOTATOR)
            invitation = accounts.invite_new_user(
                project=project, username=username, email=request.POST.get("email", ""),
                role=role,
            )  # fmt: skip
            path, username = invitation.set_password_path, invitation.user.username
        elif action == "link":
            path = accounts.new_set_password_path(project=project, username=username)
        else:
            raise errors.PagewiseError(f"Unknown action '{action[:40]}'.")
    except errors.PagewiseError as exc:
        messages.error(request, exc.message)
        return redirect("lead-members", slug=project.slug)
    return render(
        request,
        "labeling/lead/invited.html",
        _context(
            request, project, "members", username=username, link=request.build_absolute_uri(path)
        ),
    )


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """The page an invitation link opens: choose a password, then you are logged in."""

    template_name = "registration/set_password.html"
    post_reset_login = True
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Password set. Welcome to Pagewise.")
        return response


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_token_page(request):
    new_key = None
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "create":
            new_key = accounts.create_api_token(user=request.user)
        elif action == "revoke":
            if accounts.revoke_api_token(user=request.user):
                messages.success(request, "Token revoked: requests with it are now refused (401).")
            else:
                messages.error(request, "You have no token to revoke.")
            return redirect("api-token")
        else:
            messages.error(request, "Unknown action.")
            return redirect("api-token")
    return render(
        request,
        "labeling/account/api_token.html",
        {
            "token": accounts.api_token_of(user=request.user),
            "new_key": new_key,
            "projects_url": request.build_absolute_uri(reverse("api-projects")),
        },
    )
