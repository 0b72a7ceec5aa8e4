"""End to end: a real Celery worker process over Redis recomputes ranks in PostgreSQL."""

import pytest

from labeling.models import Item, Project, Query
from labeling.tasks import recompute_upstream_ranks

from .conftest import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_worker_over_redis_recomputes_upstream_ranks_in_postgres(celery_worker_process):
    project = Project.objects.create(slug="e2e", name="E2E", modalities=["text"])
    query = Query.objects.create(project=project, external_id="q", text="cat")
    for i, score in enumerate([0.1, 0.9, 0.5]):
        Item.objects.create(
            project=project,
            query=query,
            external_id=f"d{i}",
            modality="text",
            title="t",
            upstream_score=score,
        )
    assert set(Item.objects.values_list("upstream_rank", flat=True)) == {None}

    recompute_upstream_ranks.apply_async(args=[project.pk], queue=celery_worker_process)

    wait_for(
        lambda: not Item.objects.filter(project=project, upstream_rank__isnull=True).exists(),
        what="the worker to write the ranks",
    )
    assert dict(Item.objects.values_list("external_id", "upstream_rank")) == {
        "d1": 1,
        "d2": 2,
        "d0": 3,
    }
