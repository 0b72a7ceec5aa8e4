"""The demo loads through the real import, is idempotent, and shows in the admin with images."""

import pytest
from django.core.management import call_command

from labeling.models import Item, Membership, Project, Query


@pytest.mark.django_db
def test_load_demo_twice_creates_everything_once(capsys):
    call_command("load_demo")
    counts = (
        Project.objects.count(),
        Query.objects.count(),
        Item.objects.count(),
        Membership.objects.count(),
    )
    call_command("load_demo")
    assert (
        Project.objects.count(),
        Query.objects.count(),
        Item.objects.count(),
        Membership.objects.count(),
    ) == counts
    assert counts[1] >= 8 and counts[2] >= 60
    assert {"lead", "annotator", "scientist"} <= set(
        Membership.objects.values_list("role", flat=True)
    )
    out = capsys.readouterr().out
    assert "annotator1 / pagewise-annotator1 / annotator" in out


@pytest.mark.django_db
def test_admin_lists_demo_items_with_their_images(client):
    call_command("load_demo")
    client.login(username="admin", password="pagewise-admin")
    response = client.get("/admin/labeling/item/?modality__exact=image")
    assert response.status_code == 200
    html = response.content.decode()
    image = Item.objects.filter(modality="image").exclude(image="").first()
    assert image.image.url in html
    served = client.get(image.image.url)
    assert served.status_code == 200
    assert b"".join(served.streaming_content)[:4] in (
        b"\x89PNG",
        b"\xff\xd8\xff\xe0",
        b"\xff\xd8\xff\xdb",
        b"\xff\xd8\xff\xe1",
    )
    for path in ("/admin/labeling/project/", "/admin/labeling/query/", "/admin/auth/user/"):
        assert client.get(path).status_code == 200
