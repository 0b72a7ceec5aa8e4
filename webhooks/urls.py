"""URLs of the lead's webhooks pages."""

from django.urls import path

from . import views

urlpatterns = [
    path("projects/<slug:slug>/webhooks/", views.webhooks_page, name="webhooks"),
    path(
        "projects/<slug:slug>/webhooks/<int:hook_id>/", views.webhook_detail, name="webhook-detail"
    ),
    path(
        "projects/<slug:slug>/webhooks/deliveries/<int:delivery_id>/replay/",
        views.replay,
        name="webhook-replay",
    ),
]
