"""The import's fast paths (plain lines, plain items) accept exactly what the full checks accept:
whenever a fast path answers, the full check gives the same answer."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from labeling.imports import (
    _checked_item,
    _Collector,
    _plain_item,
    _plainly_storable,
    unstorable,
)

MODALITIES = {"text", "image"}
ids = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["d1", "q-1", "=x", "+1", "-a", "@b", "a b", "a\tb", "é", "x" * 201, ""]),
    st.integers(),
    st.none(),
)
values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from(["", " ", "x" * 501]), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip
records = st.fixed_dictionaries(
    {"type": st.just("item"), "id": ids, "query": ids},
    optional={
        "modality": st.one_of(st.sampled_from(["text", "image", "video"]), values),
        "title": values, "text": values, "image": values, "upstream_score": values,
        "gold_grade": st.one_of(st.integers(min_value=-1, max_value=5), values),
        "metadata": values, "colour": values,
    },
)  # fmt: skip


@given(records)
def test_a_plain_item_is_what_the_full_checks_give(record):
    plain = _plain_item(7, record, MODALITIES, 3)
    problems = _Collector()
    checked = _checked_item(7, record, MODALITIES, 3, problems)
    if plain is not None:
        assert problems.total == 0 and checked == plain


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=60,
)


@given(json_values, st.booleans())
def test_a_plainly_storable_line_has_nothing_unstorable(value, ascii_only):
    raw = json.dumps({"metadata": value}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if _plainly_storable(raw):
        assert unstorable(json.loads(raw)) is None


def test_lines_holding_what_cannot_be_stored_are_never_plain():
    deep = "[" * 40 + "]" * 40
    for raw in [b'{"a": "\\ud800"}', b'{"a": "\\u0000"}', '{"a": "\ud800"}'.encode("utf-8", "surrogatepass"),
                ('{"a": ' + deep + "}").encode(), '{"a": 1}'.encode("utf-16")]:  # fmt: skip
        assert not _plainly_storable(raw)


def test_a_common_item_takes_the_fast_path_and_an_unusual_one_the_full_checks():
    good = {"type": "item", "id": "d1", "query": "q1", "modality": "text", "title": "A cat",
            "upstream_score": 3, "gold_grade": 2, "metadata": {"k": [1]}}  # fmt: skip
    plain = _plain_item(1, good, MODALITIES, 3)
    assert plain is not None and plain.upstream_score == 3.0 and plain.gold_grade == 2
    assert _plain_item(1, {**good, "id": "dé"}, MODALITIES, 3) is None  # valid, full check
    assert _checked_item(1, {**good, "id": "dé"}, MODALITIES, 3, _Collector()) is not None
