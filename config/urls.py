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

from labeling import api as labeling_api
from labeling import api_tasks as labeling_api_tasks
from labeling import views as labeling_views
from labeling.login import RateLimitedLoginView

urlpatterns = [
    path("", include("labeling.urls_lead")),
    path("", include("webhooks.urls")),
    path("", include("labeling.urls_accounts")),
    path("", include("data_browser.urls")),
    path("", labeling_views.home, name="home"),
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI and Redoc from drf-spectacular-sidecar's bundled assets: no CDN, works offline.
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/projects/", labeling_api.ProjectListApi.as_view(), name="api-projects"),
    path("api/projects/<slug:slug>/", labeling_api.ProjectDetailApi.as_view(), name="api-project"),
    path("api/projects/<slug:slug>/import/", labeling_api.ImportApi.as_view(), name="api-import"),
    # The annotator's workflow. Task ids are parsed by the API, so a bad id is a JSON 404.
    path("projects/<slug:slug>/annotate/", labeling_views.annotate, name="annotate"),
    path(
        "api/projects/<slug:slug>/tasks/next/",
        labeling_api_tasks.NextTaskApi.as_view(),
        name="api-task-next",
    ),
    path(
        "api/tasks/<str:task_id>/submit/",
        labeling_api_tasks.SubmitJudgmentApi.as_view(),
        name="api-task-submit",
    ),
    path(
        "api/tasks/<str:task_id>/skip/",
        labeling_api_tasks.SkipTaskApi.as_view(),
        name="api-task-skip",
    ),
]


@login_required
def serve_media(request, path: str):
    # Item images are a project's data: only signed-in users see them (names are content hashes).
    # MEDIA_ROOT is read per request, not when this module is imported (tests move it).
    try:
        return serve(request, path, document_root=settings.MEDIA_ROOT)
    except OSError:  # e.g. a name longer than the file system allows: no such file
        raise Http404("No such file.") from None


if settings.DEBUG or settings.PAGEWISE_SERVE_MEDIA:
    # Uploaded item images; in production a proxy or object store usually serves these.
    urlpatterns.append(path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", serve_media))
