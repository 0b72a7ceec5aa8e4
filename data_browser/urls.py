"""URLs of the data browser."""

from django.urls import path

from . import views

urlpatterns = [
    path("projects/<slug:slug>/data/", views.queries_page, name="data-queries"),
    path("projects/<slug:slug>/data/queries/<int:query_id>/", views.query_page, name="data-query"),
]
