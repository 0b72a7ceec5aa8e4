"""After an import, a worker encodes the items with the real encoders and scores the unscored ones."""

import pytest
from django.core.management import call_command

from labeling.models import Item
from ranking.models import ItemEmbedding, QueryEmbedding, from_bytes


@pytest.mark.embeds
@pytest.mark.django_db
def test_demo_import_embeds_every_item_and_fills_missing_upstream_scores(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo")  # the import queues embedding after its commit (eager in tests)
    items = Item.objects.filter(project__slug="demo")
    assert ItemEmbedding.objects.filter(item__in=items).count() == items.count()
    assert QueryEmbedding.objects.filter(query__project__slug="demo").count() == 12
    image = ItemEmbedding.objects.filter(item__modality="image").exclude(image_vector=None).first()
    assert (
        len(from_bytes(image.image_vector)) == 1280 and len(from_bytes(image.class_probs)) == 1000
    )
    assert image.text_encoder.startswith("all-MiniLM-L6-v2@") and image.image_encoder
    filled = items.filter(is_score_builtin=True)
    assert filled.count() == 3
    assert not filled.filter(upstream_score=None).exists()
    assert not items.filter(upstream_rank=None).exists()
    # Built-in scores rank below the imported ones of the same query and modality.
    for item in filled:
        imported = items.filter(query=item.query, modality=item.modality, is_score_builtin=False)
        assert all(item.upstream_rank > other.upstream_rank for other in imported)
    call_command("embed_items", "demo")  # nothing left to do: computed once
    assert ItemEmbedding.objects.filter(item__in=items).count() == items.count()
