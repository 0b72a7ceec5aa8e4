"""Generated import files for the import benchmark (and for tests that need a large project)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

WORDS = (
    "search relevance page image video answer ranking query result document photo travel recipe "
    "coffee cat rocket moon flower temple coin horse camera galaxy review guide history price"
).split()


def generated_records(
    *, items: int, items_per_query: int = 40, modalities=("text", "image"), seed: int = 0
) -> Iterator[dict]:
    """Queries with `items_per_query` items each, scores on a different scale per modality."""
    rng = random.Random(seed)
    queries = max(1, items // items_per_query)
    made = 0
    for q in range(queries):
        qid = f"q{q}"
        yield {"type": "query", "id": qid, "text": " ".join(rng.sample(WORDS, 3)), "split": "train"}
        n = items_per_query if q < queries - 1 else items - made
        for i in range(n):
            modality = modalities[i % len(modalities)]
            score = rng.uniform(0, 25) if modality == "text" else rng.gauss(0, 3)
            yield {
                "type": "item",
                "id": f"{qid}-d{i}",
                "query": qid,
                "modality": modality,
                "title": " ".join(rng.sample(WORDS, 5)).capitalize(),
                "text": " ".join(rng.choices(WORDS, k=30)),
                "upstream_score": round(score, 4),
                "metadata": {"source": "generated"},
            }
        made += n


def write_jsonl(path, records) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
            count += 1
    return count


def refresh_planner_statistics() -> None:
    """After bulk-creating benchmark data, refresh PostgreSQL's statistics, as autovacuum would."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE labeling_task, labeling_item, labeling_pageslot, labeling_judgment"
            )


def bulk_queries_and_items(
    *, project, items: int, items_per_query: int = 40, seed: int = 0, batch: int = 20_000
) -> int:
    """Bulk-insert a generated project's queries and items (no import file, no checks): the
    fastest way to a project of a million items for the page benchmarks. Returns items made."""
    from .models import Item, Query

    rng = random.Random(seed)
    modalities = list(project.modalities)
    queries = max(1, items // items_per_query)
    made = 0
    per_batch = max(1, batch // items_per_query)
    for first in range(0, queries, per_batch):
        numbers = range(first, min(first + per_batch, queries))
        stored = Query.objects.bulk_create(
            [
                Query(project=project, external_id=f"q{q}", text=" ".join(rng.sample(WORDS, 3)))
                for q in numbers
            ]
        )
        rows = []
        for q, query in zip(numbers, stored, strict=True):
            n = items_per_query if q < queries - 1 else items - made
            ranks: dict[str, int] = {}
            for i in range(n):
                modality = modalities[i % len(modalities)]
                ranks[modality] = ranks.get(modality, 0) + 1
                rows.append(
                    Item(
                        project=project,
                        query=query,
                        external_id=f"q{q}-d{i}",
                        modality=modality,
                        title=" ".join(rng.sample(WORDS, 4)),
                        text=" ".join(rng.sample(WORDS, 8)),
                        upstream_score=100.0 - ranks[modality],
                        upstream_rank=ranks[modality],
                    )  # fmt: skip
                )
            made += n
        Item.objects.bulk_create(rows, batch_size=5000)
    return made
