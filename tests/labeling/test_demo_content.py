"""The demo data (labeling/demo_data/) is valid import data: consistent ids, real offline images,
plausible scores."""

from __future__ import annotations

import io
import json
import re
import socket
import statistics
from collections import Counter, defaultdict
from itertools import combinations

import pytest
from PIL import Image

from labeling.demo import DEMO_DIR, demo_images, demo_project, demo_records, demo_users

DEMO_PROJECT = demo_project()
DEMO_USERS = demo_users()
MAX_IMAGE_SIDE = json.loads((DEMO_DIR / "project.json").read_text())["max_image_side"]

QUERY_FIELDS = {"type", "id", "text", "split"}
ITEM_FIELDS = {
    "type", "id", "query", "modality", "title", "text", "image",
    "upstream_score", "gold_grade", "metadata",
}  # fmt: skip


def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in this test")


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    # The demo must run on a machine with no network: any download attempt fails the test.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        return demo_images()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return demo_records()


def _queries(records):
    return [r for r in records if r["type"] == "query"]


def _items(records):
    return [r for r in records if r["type"] == "item"]


def test_demo_project_has_two_modalities_and_five_grades():
    assert DEMO_PROJECT["slug"] == "demo"
    assert DEMO_PROJECT["modalities"] == ["text", "image"]
    assert len(DEMO_PROJECT["grade_names"]) == 5


def test_demo_users_cover_every_role_with_unique_usernames():
    assert [user["username"] for user in DEMO_USERS] == [
        "lead",
        "annotator1",
        "annotator2",
        "scientist",
    ]
    assert {user["role"] for user in DEMO_USERS} == {"lead", "annotator", "scientist"}
    assert all(user["password"] for user in DEMO_USERS)


def test_records_use_only_import_format_fields_and_serialise_to_json(records):
    for record in records:
        allowed = QUERY_FIELDS if record["type"] == "query" else ITEM_FIELDS
        assert set(record) <= allowed, record["id"]
        assert json.loads(json.dumps(record)) == record


def test_record_ids_are_unique(records):
    query_ids = Counter(r["id"] for r in _queries(records))
    item_ids = Counter(r["id"] for r in _items(records))
    assert max(query_ids.values()) == 1
    assert max(item_ids.values()) == 1


def test_every_item_belongs_to_a_query_listed_before_it(records):
    seen = set()
    for record in records:
        if record["type"] == "query":
            seen.add(record["id"])
        else:
            assert record["query"] in seen, record["id"]


def test_counts_are_large_enough_for_a_demo(records, images):
    assert len(_queries(records)) >= 10
    assert len(_items(records)) >= 80
    assert len(images) >= 8
    assert len(set(images.values())) == len(images), "every image is a different picture"


def test_every_query_has_five_to_eight_text_items_and_two_to_five_image_items(records):
    per_query = defaultdict(Counter)
    for item in _items(records):
        per_query[item["query"]][item["modality"]] += 1
    for query in _queries(records):
        counts = per_query[query["id"]]
        assert 5 <= counts["text"] <= 8, query["id"]
        assert 2 <= counts["image"] <= 5, query["id"]


def test_items_carry_the_content_of_their_modality_and_text_items_are_short_paragraphs(records):
    for item in _items(records):
        assert item["title"], item["id"]
        assert item["metadata"]["source"], item["id"]
        if item["modality"] == "text":
            assert "image" not in item
            sentences = re.findall(r"[.!?](?:\s|$)", item["text"])
            assert 2 <= len(sentences) <= 4, item["id"]
        else:
            assert item["image"].startswith("images/")


def test_two_queries_are_gold_and_all_their_items_have_a_gold_grade(records):
    splits = Counter(q["split"] for q in _queries(records))
    assert splits == {"train": len(_queries(records)) - 2, "gold": 2}
    gold = {q["id"] for q in _queries(records) if q["split"] == "gold"}
    for item in _items(records):
        if item["query"] in gold:
            assert item["gold_grade"] in range(5), item["id"]
        else:
            assert "gold_grade" not in item, item["id"]


def test_gold_queries_span_relevant_and_irrelevant_items_in_both_modalities(records):
    gold = {q["id"] for q in _queries(records) if q["split"] == "gold"}
    for query_id in gold:
        for modality in ("text", "image"):
            grades = [
                i["gold_grade"]
                for i in _items(records)
                if i["query"] == query_id and i["modality"] == modality
            ]
            assert max(grades) >= 3 and min(grades) == 0, (query_id, modality)


def test_a_few_items_come_without_an_upstream_score(records):
    unscored = [i["id"] for i in _items(records) if "upstream_score" not in i]
    assert 2 <= len(unscored) <= 3
    assert all(isinstance(i.get("upstream_score", 0.0), float) for i in _items(records))


def test_upstream_scores_of_text_and_image_are_on_different_scales(records):
    scores = defaultdict(list)
    for item in _items(records):
        if "upstream_score" in item:
            scores[item["modality"]].append(item["upstream_score"])
    # Text looks like BM25 (positive, up to ~25); images look like logits (around zero).
    assert all(2.0 <= s <= 25.0 for s in scores["text"])
    assert all(-4.0 <= s <= 6.0 for s in scores["image"])
    assert any(s < 0 for s in scores["image"])
    assert statistics.median(scores["text"]) > max(scores["image"])


def test_upstream_order_mostly_agrees_with_gold_grades_but_not_perfectly(records):
    by_list = defaultdict(list)
    for item in _items(records):
        if "gold_grade" in item and "upstream_score" in item:
            by_list[item["query"], item["modality"]].append(
                (item["gold_grade"], item["upstream_score"])
            )
    concordant = discordant = 0
    for pairs in by_list.values():
        for (grade_a, score_a), (grade_b, score_b) in combinations(pairs, 2):
            if grade_a == grade_b:
                continue
            if (grade_a - grade_b) * (score_a - score_b) > 0:
                concordant += 1
            else:
                discordant += 1
        best_grade, _ = max(pairs, key=lambda pair: pair[1])
        assert best_grade >= 3, "each ranker's top item is relevant"
    assert discordant >= 1, "real rankers are not perfect"
    assert concordant / (concordant + discordant) >= 0.8


def test_every_referenced_image_is_shipped_and_every_shipped_image_is_referenced(records, images):
    referenced = {i["image"] for i in _items(records) if i["modality"] == "image"}
    assert referenced == set(images)


def test_images_decode_and_are_small(images):
    for path, data in images.items():
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            expected = "PNG" if path.endswith(".png") else "JPEG"
            assert image.format == expected, path
            assert max(image.size) <= MAX_IMAGE_SIDE, path
            assert min(image.size) >= 100, path
    assert sum(len(data) for data in images.values()) < 1_500_000
