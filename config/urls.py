import re

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.urls import include, path
from django.views.static import serve
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from labeling.models import Project
from labeling.selectors import role_of
from web import api, api_tasks, views
from web.login import RateLimitedLoginView


def _docs_page(view):
    # The docs pages (and the schema, by SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]) are for
    # signed-in users unless PAGEWISE_PUBLIC_API_SCHEMA: a browser is sent to the sign-in page.
    return view if settings.PAGEWISE_PUBLIC_API_SCHEMA else login_required(view)


# The annotator's workflow first: it is most of the traffic, and a URL is resolved by trying the
# patterns in order (last in the list, next task and submit took ~1 ms each to resolve).
urlpatterns = [
    # The annotator's workflow. Task ids are parsed by the API, so a bad id is a JSON 404.
    path("projects/<slug:slug>/annotate/", views.annotate, name="annotate"),
    path(
        "api/projects/<slug:slug>/tasks/next/",
        api_tasks.NextTaskApi.as_view(),
        name="api-task-next",
    ),
    path(
        "api/tasks/<str:task_id>/submit/",
        api_tasks.SubmitJudgmentApi.as_view(),
        name="api-task-submit",
    ),
    path(
        "api/tasks/<str:task_id>/skip/",
        api_tasks.SkipTaskApi.as_view(),
        name="api-task-skip",
    ),
    path(
        "api/tasks/<str:task_id>/unskip/",
        api_tasks.UnskipTaskApi.as_view(),
        name="api-task-unskip",
    ),
    path(
        "api/judgments/<str:judgment_id>/",
        api_tasks.RevisionApi.as_view(),
        name="api-judgment",
    ),
    path(
        "api/judgments/<str:judgment_id>/revise/",
        api_tasks.ReviseJudgmentApi.as_view(),
        name="api-judgment-revise",
    ),
    path("", include("web.urls_lead")),
    path("", include("webhooks.urls")),
    path("", include("web.urls_accounts")),
    path("", include("data_browser.urls")),
    path("", include("web.urls_annotator")),
    path("", include("review.urls")),
    path("", views.home, name="home"),
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI and Redoc from drf-spectacular-sidecar's bundled assets: no CDN, works offline.
    path(
        "api/docs/",
        _docs_page(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        _docs_page(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
    path("api/projects/", api.ProjectListApi.as_view(), name="api-projects"),
    path("api/projects/<slug:slug>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("api/projects/<slug:slug>/import/", api.ImportApi.as_view(), name="api-import"),
    path(
        "api/projects/<slug:slug>/imports/",
        api.ImportRunListApi.as_view(),
        name="api-import-runs",
    ),
    path(
        "api/projects/<slug:slug>/imports/<int:run_id>/",
        api.ImportRunApi.as_view(),
        name="api-import-run",
    ),
    path(
        "api/projects/<slug:slug>/imports/<int:run_id>/cancel/",
        api.ImportRunCancelApi.as_view(),
        name="api-import-run-cancel",
    ),
]


@login_required
def serve_media(request, path: str):
    # Item images are a project's data: only members of that project (any role) see them. Imports
    # store them under projects/<project id>/; anything else under MEDIA_ROOT is nobody's to read.
    # Others get a 404, like a project page, so a project's files do not leak their existence.
    # MEDIA_ROOT is read per request, not when this module is imported (tests move it).
    match = re.fullmatch(r"projects/(\d{1,18})/.+", path)
    project = Project.objects.filter(pk=int(match[1])).first() if match else None
    if project is None or role_of(user=request.user, project=project) is None:
        raise Http404("No such file.")
    try:
        return serve(request, path, document_root=settings.MEDIA_ROOT)
    except OSError:  # e.g. a name longer than the file system allows: no such file
        raise Http404("No such file.") from None


if settings.DEBUG or settings.PAGEWISE_SERVE_MEDIA:
    # Uploaded item images; in production a proxy or object store usually serves these.
    urlpatterns.append(path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", serve_media))
