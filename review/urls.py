"""URL of the lead's review queue (it replaced labeling's review page under the same name)."""

from django.urls import path

from . import views

urlpatterns = [
    path("projects/<slug:slug>/review/", views.review_page, name="lead-review"),
]
