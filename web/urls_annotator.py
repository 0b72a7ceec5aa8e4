"""URLs of the pages around judging: guidelines, the annotator's history, revisions and skips."""

from django.urls import path

from . import views_annotator

urlpatterns = [
    path("projects/<slug:slug>/guidelines/", views_annotator.guidelines_page, name="guidelines"),
    path("projects/<slug:slug>/my-judgments/", views_annotator.history_page, name="my-judgments"),
    path(
        "projects/<slug:slug>/my-judgments/skips/<str:task_id>/take-back/",
        views_annotator.unskip,
        name="unskip",
    ),
]
