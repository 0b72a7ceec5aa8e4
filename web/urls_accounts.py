"""URLs of projects and people: a new project, invitations, set-password links, API tokens."""

from django.urls import path

from . import views_accounts

urlpatterns = [
    path("projects/new/", views_accounts.project_new, name="project-new"),
    path(
        "projects/<slug:slug>/members/invite/",
        views_accounts.member_invite,
        name="lead-member-invite",
    ),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        views_accounts.SetPasswordView.as_view(),
        name="set-password",
    ),
    path("account/api-token/", views_accounts.api_token_page, name="api-token"),
]
