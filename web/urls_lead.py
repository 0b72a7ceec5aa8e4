"""URLs of the lead and data-scientist pages, their REST API and the API docs page."""

from django.urls import path

from . import api_lead, views_lead

urlpatterns = [
    # HTML pages
    path("projects/<slug:slug>/settings/", views_lead.settings_page, name="lead-settings"),
    path(
        "projects/<slug:slug>/settings/simulation/",
        views_lead.simulation_status,
        name="lead-simulation-status",
    ),
    path(
        "projects/<slug:slug>/settings/simulation/run/",
        views_lead.simulation_run,
        name="lead-simulation-run",
    ),
    path(
        "projects/<slug:slug>/settings/simulation/apply/",
        views_lead.simulation_apply,
        name="lead-simulation-apply",
    ),
    path(
        "projects/<slug:slug>/settings/calibration/",
        views_lead.calibration_action,
        name="lead-calibration",
    ),
    path("projects/<slug:slug>/members/", views_lead.members_page, name="lead-members"),
    path("projects/<slug:slug>/import/", views_lead.import_page, name="lead-import"),
    path(
        "projects/<slug:slug>/import/runs/<int:run_id>/",
        views_lead.import_run_page,
        name="lead-import-run",
    ),
    path(
        "projects/<slug:slug>/import/runs/<int:run_id>/status/",
        views_lead.import_run_status,
        name="lead-import-run-status",
    ),
    path(
        "projects/<slug:slug>/import/runs/<int:run_id>/cancel/",
        views_lead.import_run_cancel,
        name="lead-import-run-cancel",
    ),
    path("projects/<slug:slug>/dashboard/", views_lead.dashboard_page, name="lead-dashboard"),
    path(
        "projects/<slug:slug>/dashboard/resolve/",
        views_lead.dashboard_resolve,
        name="lead-dashboard-resolve",
    ),
    path("projects/<slug:slug>/exports/", views_lead.exports_page, name="exports"),
    path(
        "projects/<slug:slug>/exports/<str:format_name>/",
        views_lead.export_download,
        name="export-download",
    ),
    # REST API
    path("api/projects/<slug:slug>/members/", api_lead.MembersApi.as_view(), name="api-members"),
    path(
        "api/projects/<slug:slug>/members/<str:username>/",
        api_lead.MemberApi.as_view(),
        name="api-member",
    ),
    path(
        "api/projects/<slug:slug>/settings/",
        api_lead.ProjectSettingsApi.as_view(),
        name="api-settings",
    ),
    path(
        "api/projects/<slug:slug>/judgments/",
        api_lead.JudgmentListApi.as_view(),
        name="api-judgments",
    ),
    path(
        "api/projects/<slug:slug>/exports/<str:format_name>/",
        api_lead.ExportApi.as_view(),
        name="api-export",
    ),
    path(
        "api/projects/<slug:slug>/versions/",
        api_lead.RerankerVersionListApi.as_view(),
        name="api-versions",
    ),
    path(
        "api/projects/<slug:slug>/dashboard/",
        api_lead.DashboardApi.as_view(),
        name="api-dashboard",
    ),
]
