from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView

from labeling import api as labeling_api
from labeling import views as labeling_views

urlpatterns = [
    path("", labeling_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/projects/", labeling_api.ProjectListApi.as_view(), name="api-projects"),
    path("api/projects/<slug:slug>/", labeling_api.ProjectDetailApi.as_view(), name="api-project"),
    path("api/projects/<slug:slug>/import/", labeling_api.ImportApi.as_view(), name="api-import"),
]

if settings.DEBUG or settings.PAGEWISE_SERVE_MEDIA:
    # Uploaded item images; in production a proxy or object store usually serves these.
    urlpatterns.append(
        path(
            f"{settings.MEDIA_URL.strip('/')}/<path:path>",
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    )
