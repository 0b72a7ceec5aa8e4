"""A revised probe answer: the search is exactly what it would be had that answer been given."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from active_selection.search import Outcome, QuerySearch, select_anchors

MAX_GRADE = 4
grades = st.integers(min_value=0, max_value=MAX_GRADE)


def start(r_grades: list[int], b_grades: list[int]) -> QuerySearch:
    r_items = [(f"r{rank}", rank, grade) for rank, grade in enumerate(r_grades)]
    b_ids = [f"b{position}" for position in range(len(b_grades))]
    return QuerySearch.start(select_anchors(r_items), b_ids, max_grade=MAX_GRADE)


def answered(r_grades, b_grades, seed: int) -> tuple[QuerySearch, list[tuple]]:
    """A search run to its end by noisy annotators; returns it and its answers in order."""
    rng = random.Random(seed)
    search = start(r_grades, b_grades)
    log = []
    for step in range(200):
        probe = search.next_probe()
        if probe is None:
            break
        outcome = rng.choice(list(Outcome))
        annotator = rng.choice(
            [a for a in ("a", "b", "c", "d") if a not in probe.exclude_annotators]
        )
        search.record(
            outcome, anchor_id=probe.anchor_id, position=probe.b_position,
            annotator=annotator, judgment_id=step,
        )  # fmt: skip
        log.append((probe.anchor_id, probe.b_position, outcome, annotator, step))
    return search, log


@settings(max_examples=150, deadline=None)
@given(
    r_grades=st.lists(grades, min_size=1, max_size=5),
    b_grades=st.lists(grades, min_size=1, max_size=8),
    seed=st.integers(0, 10_000),
    pick=st.integers(0, 1000),
    new_outcome=st.sampled_from(list(Outcome)),
)
def test_a_revision_gives_the_search_the_corrected_history(
    r_grades, b_grades, seed, pick, new_outcome
):
    search, log = answered(r_grades, b_grades, seed)
    if not log:
        return
    index = pick % len(log)
    assert search.revise(judgment_id=index, outcome=new_outcome, new_judgment_id="rev")
    replay = start(r_grades, b_grades)
    for anchor_id, position, outcome, annotator, step in log:
        corrected = step == index
        replay.record(
            new_outcome if corrected else outcome, anchor_id=anchor_id, position=position,
            annotator=annotator, judgment_id="rev" if corrected else step,
        )  # fmt: skip
    assert search.to_state() == replay.to_state()
    # Then it goes on from there: the next probe is the one the corrected evidence asks for.
    assert search.next_probe() == replay.next_probe()


def test_revising_twice_or_an_unknown_answer_changes_nothing():
    search, log = answered([4, 2, 0], [4, 3, 2, 1, 0], seed=1)
    state = search.to_state()
    assert not search.revise(judgment_id="nope", outcome=Outcome.EQUAL, new_judgment_id="r1")
    assert search.revise(judgment_id=0, outcome=Outcome.EQUAL, new_judgment_id="r1")
    changed = search.to_state()
    assert changed != state or log[0][2] is Outcome.EQUAL
    assert not search.revise(judgment_id=0, outcome=Outcome.B_BETTER, new_judgment_id="r1")
    assert search.to_state() == changed, "a revision delivered twice counts once"
