"""What the judging page gets to read an item: the whole text and a safe source link."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import Item, Role
from web.api_tasks import SNIPPET_CHARS, source_url

from .task_factories import make_page_task

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"url": "https://example.org/a?b=1"}, "https://example.org/a?b=1"),
        ({"source_url": "http://example.org/x"}, "http://example.org/x"),
        ({"link": " HTTPS://Example.org/ "}, "HTTPS://Example.org/"),
        ({"url": "javascript:alert(1)"}, None),
        ({"url": "JavaScript:alert(1)", "link": "https://ok.example/"}, "https://ok.example/"),
        ({"url": "data:text/html,<script>1</script>"}, None),
        ({"url": "//example.org/no-scheme"}, None),
        ({"url": "/relative"}, None),
        ({"url": "https://exa\nmple.org/"}, None),
        ({"url": "http://[::1"}, None),
        ({"url": ["https://example.org"]}, None),
        ({}, None),
        ("not a dict", None),
    ],
)
def test_only_absolute_http_links_become_source_links(metadata, expected):
    assert source_url(metadata) == expected


def test_the_task_carries_the_whole_text_and_the_source_link(project, make_user):
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    task = make_page_task(project, items=2)
    long_item = Item.objects.get(pk=task.page.slots.order_by("position").first().item_id)
    long_item.text = "word " * 400
    long_item.metadata = {"url": "https://example.org/doc"}
    long_item.save()
    client = APIClient()
    client.force_authenticate(annotator)
    items = client.post("/api/projects/p/tasks/next/", format="json").json()["task"]["items"]
    assert len(items[0]["snippet"]) <= SNIPPET_CHARS < len(items[0]["text"])
    assert items[0]["text"] == long_item.text
    assert items[0]["source_url"] == "https://example.org/doc"
    assert items[1]["source_url"] is None and items[1]["text"] == items[1]["snippet"]
