"""Specifications of the iso-label anchor binary search (active_selection/search.py)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from itertools import combinations, combinations_with_replacement

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from active_selection.search import (
    Anchor,
    AnchorSearch,
    Equality,
    Outcome,
    PairSource,
    PreferencePair,
    Probe,
    QuerySearch,
    probe_bound,
    select_anchors,
)

MAX_GRADE = 4
ANNOTATORS = ("ann0", "ann1", "ann2", "ann3", "ann4", "ann5")

grades = st.integers(0, MAX_GRADE)
r_grade_lists = st.lists(grades, min_size=1, max_size=8)
# B's true grades never rise along its upstream order.
small_b = st.lists(grades, max_size=9).map(lambda gs: sorted(gs, reverse=True))
large_b = st.lists(grades, max_size=40).map(lambda gs: sorted(gs, reverse=True))
# Bounded so the whole file stays fast: core properties get more examples than derived ones.
core = settings(max_examples=200, deadline=None)
secondary = settings(max_examples=100, deadline=None)

Oracle = Callable[[Probe, int], tuple[Outcome, str | None]]


def truthful(anchor_grade: int, b_grade: int) -> Outcome:
    if b_grade > anchor_grade:
        return Outcome.B_BETTER
    if b_grade < anchor_grade:
        return Outcome.ANCHOR_BETTER
    return Outcome.EQUAL


def start(r_grades: list[int], b_grades: list[int], **kwargs: int) -> QuerySearch:
    r_items = [(f"r{rank}", rank, grade) for rank, grade in enumerate(r_grades)]
    b_ids = [f"b{position}" for position in range(len(b_grades))]
    return QuerySearch.start(select_anchors(r_items), b_ids, max_grade=MAX_GRADE, **kwargs)


def truthful_oracle(b_grades: list[int]) -> Oracle:
    def answer(probe: Probe, anchor_grade: int) -> tuple[Outcome, str | None]:
        return truthful(anchor_grade, b_grades[probe.b_position]), None

    return answer


def noisy_oracle(b_grades: list[int], flip: float, rng: random.Random) -> Oracle:
    def answer(probe: Probe, anchor_grade: int) -> tuple[Outcome, str | None]:
        outcome = truthful(anchor_grade, b_grades[probe.b_position])
        if rng.random() < flip:
            outcome = rng.choice([o for o in Outcome if o is not outcome])
        eligible = [a for a in ANNOTATORS if a not in probe.exclude_annotators]
        return outcome, rng.choice(eligible)

    return answer


def run(
    search: QuerySearch,
    oracle: Oracle,
    *,
    max_steps: int = 1000,
    on_probe: Callable[[QuerySearch, Probe], None] | None = None,
) -> list[Probe]:
    probes: list[Probe] = []
    for _ in range(max_steps):
        probe = search.next_probe()
        if probe is None:
            return probes
        if on_probe is not None:
            on_probe(search, probe)
        probes.append(probe)
        anchor = search.anchor(probe.anchor_id)
        outcome, annotator = oracle(probe, anchor.anchor_grade)
        search.record(
            outcome, anchor_id=probe.anchor_id, position=probe.b_position, annotator=annotator
        )
    raise AssertionError(f"search did not finish within {max_steps} probes")


def answers_of(search: QuerySearch) -> list[tuple[int, int, Outcome, int]]:
    """(anchor grade, position, outcome, seq) of every recorded answer."""
    return [
        (anchor.anchor_grade, answer.position, answer.outcome, answer.seq)
        for anchor in search.anchors
        for answer in anchor.history
    ]


def consistent_gradings(search: QuerySearch) -> list[tuple[int, ...]]:
    """Brute force: every non-increasing grading of B in [0, MAX_GRADE] making all answers true."""
    n = len(search.b_item_ids)
    answers = answers_of(search)
    return [
        grading
        for grading in combinations_with_replacement(range(MAX_GRADE, -1, -1), n)
        if all(
            truthful(grade, grading[position]) == outcome for grade, position, outcome, _ in answers
        )
    ]


def brute_force_contradictions(search: QuerySearch) -> set[tuple[int, int]]:
    """Pairs of answers that no monotone (open-scale) grading of their two items makes both true."""
    open_scale = range(-1, MAX_GRADE + 2)
    found = set()
    answers = sorted(answers_of(search), key=lambda answer: answer[3])
    for (g1, p1, o1, s1), (g2, p2, o2, s2) in combinations(answers, 2):
        satisfiable = any(
            truthful(g1, v1) == o1 and truthful(g2, v2) == o2
            for v1 in open_scale
            for v2 in open_scale
            if (v1 >= v2 if p1 < p2 else v1 <= v2 if p1 > p2 else v1 == v2)
        )
        if not satisfiable:
            found.add((s1, s2))
    return found


def true_boundary(anchor_grade: int, b_grades: list[int]) -> int:
    return sum(1 for grade in b_grades if grade > anchor_grade)


# Truthful answers on a monotone world.


@core
@given(r_grades=r_grade_lists, b_grades=large_b)
def test_monotone_truth_finds_exact_boundary_within_probe_bound(
    r_grades: list[int], b_grades: list[int]
) -> None:
    search = start(r_grades, b_grades)
    probes = run(search, truthful_oracle(b_grades))
    assert search.is_done
    assert not search.contradictions
    assert not any(probe.is_reask for probe in probes)
    for anchor in search.anchors:
        assert anchor.boundary == true_boundary(anchor.anchor_grade, b_grades)
        assert len(anchor.history) <= probe_bound(len(b_grades))


@core
@given(r_grades=r_grade_lists, b_grades=small_b)
def test_monotone_truth_intervals_contain_truth_and_are_exactly_what_answers_entail(
    r_grades: list[int], b_grades: list[int]
) -> None:
    search = start(r_grades, b_grades)
    run(search, truthful_oracle(b_grades))
    gradings = consistent_gradings(search)
    intervals = search.implied_grade_intervals()
    for position, item_id in enumerate(search.b_item_ids):
        low, high = intervals[item_id]
        assert low <= b_grades[position] <= high
        # Exact where the answers determine the grade, and never wider than they allow.
        assert (low, high) == (
            min(g[position] for g in gradings),
            max(g[position] for g in gradings),
        )


@core
@given(r_grades=r_grade_lists, b_grades=small_b)
def test_monotone_truth_implied_pairs_are_true_and_exactly_the_entailed_ones(
    r_grades: list[int], b_grades: list[int]
) -> None:
    search = start(r_grades, b_grades)
    run(search, truthful_oracle(b_grades))
    gradings = consistent_gradings(search)
    pairs = search.implied_pairs()
    assert len({(p.better_id, p.worse_id) for p in pairs}) == len(pairs)
    true_grade = {
        item_id: grade for item_id, grade in zip(search.b_item_ids, b_grades, strict=True)
    }
    true_grade |= {anchor.anchor_id: anchor.anchor_grade for anchor in search.anchors}
    for pair in pairs:
        assert true_grade[pair.better_id] > true_grade[pair.worse_id]
    entailed = set()
    for anchor in search.anchors:
        for position, item_id in enumerate(search.b_item_ids):
            if all(g[position] > anchor.anchor_grade for g in gradings):
                entailed.add((item_id, anchor.anchor_id))
            if all(g[position] < anchor.anchor_grade for g in gradings):
                entailed.add((anchor.anchor_id, item_id))
    assert {(p.better_id, p.worse_id) for p in pairs} == entailed


@secondary
@given(r_grades=r_grade_lists, b_grades=large_b)
def test_implied_pairs_hold_the_design_construction(
    r_grades: list[int], b_grades: list[int]
) -> None:
    """B items above a's boundary beat a; those at or below the next lower one's lose to a."""
    search = start(r_grades, b_grades)
    run(search, truthful_oracle(b_grades))
    pairs = {(p.better_id, p.worse_id) for p in search.implied_pairs()}
    b_ids = search.b_item_ids
    for higher, lower in zip(search.anchors, [*search.anchors[1:], None], strict=True):
        assert higher.boundary is not None
        for item_id in b_ids[: higher.boundary]:
            assert (item_id, higher.anchor_id) in pairs
        if lower is not None:
            assert lower.boundary is not None
            for item_id in b_ids[lower.boundary :]:
                assert (higher.anchor_id, item_id) in pairs


@secondary
@given(r_grades=r_grade_lists, b_grades=large_b)
def test_human_pairs_are_exactly_the_strict_compare_answers(
    r_grades: list[int], b_grades: list[int]
) -> None:
    search = start(r_grades, b_grades)
    run(search, truthful_oracle(b_grades))
    judged = set()
    for anchor in search.anchors:
        for answer in anchor.history:
            item_id = search.b_item_ids[answer.position]
            if answer.outcome is Outcome.B_BETTER:
                judged.add((item_id, anchor.anchor_id))
            elif answer.outcome is Outcome.ANCHOR_BETTER:
                judged.add((anchor.anchor_id, item_id))
    human = {
        (p.better_id, p.worse_id) for p in search.implied_pairs() if p.source is PairSource.HUMAN
    }
    assert human == judged


@secondary
@given(r_grades=r_grade_lists, b_grades=large_b)
def test_equal_answers_give_iso_items_of_the_anchor_grade_and_no_pair(
    r_grades: list[int], b_grades: list[int]
) -> None:
    search = start(r_grades, b_grades)
    run(search, truthful_oracle(b_grades))
    true_grade = dict(zip(search.b_item_ids, b_grades, strict=True))
    pairs = {frozenset((p.better_id, p.worse_id)) for p in search.implied_pairs()}
    for anchor in search.anchors:
        judged_equal = [a.position for a in anchor.history if a.outcome is Outcome.EQUAL]
        if judged_equal:
            assert anchor.iso_item == search.b_item_ids[min(judged_equal)]
            assert true_grade[anchor.iso_item] == anchor.anchor_grade
        else:
            assert anchor.iso_item is None
    for equality in search.equalities():
        assert true_grade[equality.b_item_id] == search.anchor(equality.anchor_id).anchor_grade
        assert frozenset((equality.b_item_id, equality.anchor_id)) not in pairs


@secondary
@given(r_grades=r_grade_lists, b_grades=large_b)
def test_later_anchor_probes_stay_inside_finished_anchor_boundaries(
    r_grades: list[int], b_grades: list[int]
) -> None:
    def check(search: QuerySearch, probe: Probe) -> None:
        grade = search.anchor(probe.anchor_id).anchor_grade
        for anchor in search.anchors:
            if anchor.boundary is None:
                continue
            if anchor.anchor_grade > grade:
                assert probe.b_position >= anchor.boundary
            if anchor.anchor_grade < grade:
                assert probe.b_position < anchor.boundary

    search = start(r_grades, b_grades)
    run(search, truthful_oracle(b_grades), on_probe=check)


def test_narrowing_by_finished_anchors_saves_probes() -> None:
    b_grades = sorted([4] * 3 + [3] * 5 + [2] * 7 + [1] * 8 + [0] * 8, reverse=True)
    search = start([4, 3, 2, 1, 0], b_grades)
    probes = run(search, truthful_oracle(b_grades))
    independent = sum(
        len(run(start([grade], b_grades), truthful_oracle(b_grades)))
        for grade in range(MAX_GRADE + 1)
    )
    assert independent == 5 * probe_bound(len(b_grades))
    assert len(probes) < independent


# Noisy answers: contradictions and re-asks.

noisy = {
    "r_grades": r_grade_lists,
    "b_grades": small_b,
    "flip": st.floats(0.05, 0.5),
    "rng": st.randoms(use_true_random=False),
}


@core
@given(**noisy)
def test_noisy_answers_report_every_contradiction_visible_in_the_history(
    r_grades: list[int], b_grades: list[int], flip: float, rng: random.Random
) -> None:
    def check(search: QuerySearch) -> None:
        reported = {(c.first_seq, c.second_seq) for c in search.contradictions}
        assert reported == brute_force_contradictions(search)

    search = start(r_grades, b_grades)
    run(search, noisy_oracle(b_grades, flip, rng), on_probe=lambda search, _: check(search))
    check(search)


@core
@given(**noisy)
def test_noisy_answers_reask_only_annotators_who_have_not_answered_that_question(
    r_grades: list[int], b_grades: list[int], flip: float, rng: random.Random
) -> None:
    def check(search: QuerySearch, probe: Probe) -> None:
        anchor = search.anchor(probe.anchor_id)
        earlier = {a.annotator for a in anchor.history if a.position == probe.b_position}
        assert probe.is_reask == bool(earlier)
        assert set(probe.exclude_annotators) == earlier
        # A pending re-ask holds the whole search: no other probe is handed out meanwhile.
        pending = [a for a in search.anchors if a.pending_reask is not None]
        assert len(pending) <= 1
        if pending:
            assert probe.is_reask and probe.anchor_id == pending[0].anchor_id

    search = start(r_grades, b_grades)
    run(search, noisy_oracle(b_grades, flip, rng), on_probe=check)
    for anchor in search.anchors:
        for position in {a.position for a in anchor.history}:
            annotators = [a.annotator for a in anchor.history if a.position == position]
            assert len(annotators) == len(set(annotators)) <= anchor.max_answers


@secondary
@given(**noisy)
def test_noisy_answers_end_with_consistent_results_and_replayable_state(
    r_grades: list[int], b_grades: list[int], flip: float, rng: random.Random
) -> None:
    def check(search: QuerySearch, probe: Probe) -> None:
        restored = QuerySearch.from_state(json.loads(json.dumps(search.to_state())))
        assert restored == search

    search = start(r_grades, b_grades)
    run(search, noisy_oracle(b_grades, flip, rng), on_probe=check)
    assert search.is_done
    intervals = search.implied_grade_intervals()
    for low, high in intervals.values():
        assert 0 <= low <= high <= MAX_GRADE
    position = {item_id: i for i, item_id in enumerate(search.b_item_ids)}
    boundaries = search.boundaries()
    for anchor in search.anchors:
        boundary = boundaries[anchor.anchor_id]
        assert boundary is not None
        for item_id in search.b_item_ids[:boundary]:
            assert intervals[item_id][0] >= min(anchor.anchor_grade + 1, MAX_GRADE)
        for item_id in search.b_item_ids[boundary:]:
            assert intervals[item_id][1] <= anchor.anchor_grade
    # The scale is open inside the search (B may beat a top-grade anchor); reports are clamped.
    for pair in search.implied_pairs():
        if pair.better_id in position:
            assert intervals[pair.better_id][0] >= min(
                search.anchor(pair.worse_id).anchor_grade + 1, MAX_GRADE
            )
        else:
            assert intervals[pair.worse_id][1] <= max(
                search.anchor(pair.better_id).anchor_grade - 1, 0
            )


# Contradictions, re-asks and their resolution, spelled out.


def b_list(n: int) -> list[str]:
    return [f"b{i}" for i in range(n)]


def test_non_monotone_answer_is_reported_and_reasked_before_the_search_goes_on() -> None:
    search = AnchorSearch(anchor_id="a", anchor_grade=2, b_item_ids=b_list(7))
    assert search.next_probe() == Probe("a", 3, "b3", False, "bisect: boundary in [0, 7]")
    search.record(Outcome.ANCHOR_BETTER, position=3, annotator="ann0")
    # B[5] is ranked below B[3], judged not more relevant: judging B[5] better contradicts that.
    search.record(Outcome.B_BETTER, position=5, annotator="ann1")
    assert [(c.first_seq, c.second_seq) for c in search.contradictions] == [(0, 1)]
    probe = search.next_probe()
    assert probe is not None
    assert (probe.b_position, probe.is_reask, probe.exclude_annotators) == (5, True, ("ann1",))
    assert not search.is_done and search.boundary is None
    assert search.next_probe() == probe


def test_reask_majority_settles_the_position() -> None:
    search = AnchorSearch(anchor_id="a", anchor_grade=2, b_item_ids=b_list(7))
    search.record(Outcome.ANCHOR_BETTER, position=3, annotator="ann0")
    search.record(Outcome.B_BETTER, position=5, annotator="ann1")
    search.record(Outcome.ANCHOR_BETTER, position=5, annotator="ann2")
    # 1–1 at B[5]: a third annotator breaks the tie.
    probe = search.next_probe()
    assert probe is not None and probe.is_reask
    assert (probe.b_position, set(probe.exclude_annotators)) == (5, {"ann1", "ann2"})
    search.record(Outcome.ANCHOR_BETTER, position=5, annotator="ann3")
    assert search.pending_reask is None
    assert (search.lo, search.hi) == (0, 3)
    probe = search.next_probe()
    assert probe is not None and not probe.is_reask


def test_confirmed_contradiction_reasks_the_older_weaker_answer() -> None:
    search = AnchorSearch(anchor_id="a", anchor_grade=2, b_item_ids=b_list(7))
    search.record(Outcome.ANCHOR_BETTER, position=3, annotator="ann0")
    search.record(Outcome.B_BETTER, position=5, annotator="ann1")
    search.record(Outcome.B_BETTER, position=5, annotator="ann2")
    # B[5] now has two votes against one for B[3]: B[3] is the weaker and is asked again.
    assert search.pending_reask is not None
    assert (search.pending_reask.position, search.pending_reask.exclude_annotators) == (
        3,
        ("ann0",),
    )
    search.record(Outcome.B_BETTER, position=3, annotator="ann3")
    search.record(Outcome.B_BETTER, position=3, annotator="ann4")
    assert search.pending_reask is None
    assert search.lo == 6


def test_a_contradiction_two_annotators_confirm_on_each_side_is_not_asked_a_third_time() -> None:
    # Truth not monotone along B (the upstream order put B[5] below a less relevant B[3]).
    search = AnchorSearch(anchor_id="a", anchor_grade=2, b_item_ids=b_list(7))
    search.record(Outcome.ANCHOR_BETTER, position=3, annotator="ann0")
    search.record(Outcome.B_BETTER, position=5, annotator="ann1")
    search.record(Outcome.B_BETTER, position=5, annotator="ann2")  # confirmed: closed
    assert search.pending_reask is not None and search.pending_reask.position == 3
    search.record(Outcome.ANCHOR_BETTER, position=3, annotator="ann3")  # confirmed too
    # Both answers stand with two votes each: the order of B is wrong, not an annotator, so
    # the trust order decides (the older question is kept) and the search goes on.
    assert search.pending_reask is None
    assert len(search.contradictions) >= 1
    probe = search.next_probe()
    assert probe is None or not probe.is_reask


@core
@given(
    r_grades=r_grade_lists,
    b_grades=st.lists(grades, max_size=12),  # any order: truth need not be monotone along B
)
def test_truthful_answers_ask_no_question_more_than_twice_whatever_b_s_order(
    r_grades: list[int], b_grades: list[int]
) -> None:
    search = start(r_grades, b_grades)
    answered: dict[tuple, int] = {}

    def oracle(probe: Probe, anchor_grade: int) -> tuple[Outcome, str | None]:
        key = (probe.anchor_id, probe.b_position)
        answered[key] = answered.get(key, 0) + 1
        return truthful(anchor_grade, b_grades[probe.b_position]), f"ann{answered[key]}"

    run(search, oracle)
    assert search.is_done
    assert max(answered.values(), default=0) <= 2


def test_contradiction_across_anchors_is_reported_and_reasked() -> None:
    search = QuerySearch.start(
        [Anchor("hi", 3, 4), Anchor("low", 1, 9)], b_list(5), max_grade=MAX_GRADE, max_answers=3
    )
    search.record(Outcome.B_BETTER, anchor_id="hi", position=2, annotator="ann0")
    # B[2] beats the grade-3 anchor yet loses to the grade-1 anchor.
    search.record(Outcome.ANCHOR_BETTER, anchor_id="low", position=2, annotator="ann1")
    assert [(c.first_seq, c.second_seq) for c in search.contradictions] == [(0, 1)]
    probe = search.next_probe()
    assert probe is not None
    assert (probe.anchor_id, probe.b_position, probe.is_reask) == ("low", 2, True)


def test_waived_reask_leaves_the_contradiction_to_the_trust_order() -> None:
    search = AnchorSearch(anchor_id="a", anchor_grade=2, b_item_ids=b_list(7), max_answers=2)
    search.record(Outcome.ANCHOR_BETTER, position=3, annotator="ann0")
    search.record(Outcome.B_BETTER, position=5, annotator="ann1")
    # No one left for B[5]: the contradiction falls back on B[3], and once that is waived too the
    # trust order decides. Equal strength: the older answer is kept, the search goes on above B[3].
    search.waive_reask()
    assert search.pending_reask is not None and search.pending_reask.position == 3
    search.waive_reask()
    assert search.pending_reask is None
    assert search.is_contradicted
    assert (search.lo, search.hi) == (0, 3)


def test_contradictory_input_never_crashes_and_keeps_the_bounds_ordered() -> None:
    search = QuerySearch.start([Anchor("a", 2, 0)], b_list(3), max_grade=MAX_GRADE, max_answers=1)
    for position, outcome in [
        (0, "anchor_better"),
        (2, "b_better"),
        (1, "equal"),
        (0, "b_better"),
        (2, "equal"),
    ]:
        search.record(outcome, anchor_id="a", position=position)
        anchor = search.anchors[0]
        assert 0 <= anchor.lo <= anchor.hi <= 3
    assert len(search.contradictions) >= 3
    assert search.next_probe() is None


# Edge cases.


def test_empty_b_is_done_without_probes() -> None:
    search = start([3, 1], [])
    assert search.next_probe() is None
    assert search.boundaries() == {"r0": 0, "r1": 0}
    assert search.implied_grade_intervals() == {}
    assert search.implied_pairs() == []


def test_query_without_graded_r_items_is_done() -> None:
    search = QuerySearch.start(select_anchors([("r0", 0, None)]), b_list(3), max_grade=MAX_GRADE)
    assert search.next_probe() is None and search.is_done
    assert search.implied_grade_intervals() == {"b0": (0, 4), "b1": (0, 4), "b2": (0, 4)}


@pytest.mark.parametrize(
    ("outcome", "boundary", "interval", "pairs"),
    [
        (Outcome.B_BETTER, 1, (3, 4), [PreferencePair("b0", "a", PairSource.HUMAN)]),
        (Outcome.EQUAL, 0, (2, 2), []),
        (Outcome.ANCHOR_BETTER, 0, (0, 1), [PreferencePair("a", "b0", PairSource.HUMAN)]),
    ],
)
def test_single_b_item_takes_one_probe(
    outcome: Outcome, boundary: int, interval: tuple[int, int], pairs: list[PreferencePair]
) -> None:
    search = QuerySearch.start([Anchor("a", 2, 0)], ["b0"], max_grade=MAX_GRADE)
    probe = search.next_probe()
    assert probe is not None and probe.b_position == 0
    search.record(outcome, anchor_id="a", position=0)
    assert search.next_probe() is None
    assert search.boundaries() == {"a": boundary}
    assert search.implied_grade_intervals() == {"b0": interval}
    assert search.implied_pairs() == pairs
    assert search.iso_items() == {"a": "b0" if outcome is Outcome.EQUAL else None}


def test_all_b_better_puts_the_boundary_at_the_end() -> None:
    b_grades = [4] * 12
    search = start([2, 1], b_grades)
    probes = run(search, truthful_oracle(b_grades))
    assert search.boundaries() == {"r0": 12, "r1": 12}
    assert len([p for p in probes if p.anchor_id == "r0"]) <= probe_bound(12)
    assert set(search.implied_grade_intervals().values()) == {(3, 4)}


def test_all_b_worse_puts_the_boundary_at_the_start() -> None:
    b_grades = [0] * 12
    search = start([3, 2], b_grades)
    run(search, truthful_oracle(b_grades))
    assert search.boundaries() == {"r0": 0, "r1": 0}
    assert set(search.implied_grade_intervals().values()) == {(0, 1)}
    assert {(p.better_id, p.worse_id) for p in search.implied_pairs()} == {
        (anchor, f"b{i}") for anchor in ("r0", "r1") for i in range(12)
    }


def test_equal_moves_the_upper_bound_and_the_search_goes_on_above_a_run_of_ties() -> None:
    b_grades = [3, 2, 2, 2, 1]
    search = QuerySearch.start([Anchor("a", 2, 0)], b_list(5), max_grade=MAX_GRADE)
    probes = run(search, truthful_oracle(b_grades))
    assert [p.b_position for p in probes] == [2, 1, 0]
    assert search.boundaries() == {"a": 1}
    assert search.iso_items() == {"a": "b1"}
    assert Equality("b1", "a", PairSource.HUMAN) in search.equalities()
    assert search.implied_grade_intervals()["b3"] == (0, 2)


@secondary
@given(r_grades=r_grade_lists, b_grades=large_b, stop=st.integers(0, 30))
def test_state_round_trips_through_json_mid_search(
    r_grades: list[int], b_grades: list[int], stop: int
) -> None:
    oracle = truthful_oracle(b_grades)
    uninterrupted = start(r_grades, b_grades)
    run(uninterrupted, oracle)
    search = start(r_grades, b_grades)
    for _ in range(stop):
        probe = search.next_probe()
        if probe is None:
            break
        outcome, _ = oracle(probe, search.anchor(probe.anchor_id).anchor_grade)
        search.record(outcome, anchor_id=probe.anchor_id, position=probe.b_position)
    restored = QuerySearch.from_state(json.loads(json.dumps(search.to_state())))
    assert restored == search
    assert restored.next_probe() == search.next_probe()
    run(restored, oracle)
    assert restored.to_state() == uninterrupted.to_state()


def test_anchor_search_round_trips_with_a_pending_reask() -> None:
    search = AnchorSearch(anchor_id=7, anchor_grade=2, b_item_ids=[10, 11, 12, 13])
    search.record("anchor_better", position=2, annotator=1, judgment_id=100)
    search.record("b_better", position=3, annotator=2, judgment_id=101)
    state = json.loads(json.dumps(search.to_state()))
    assert state["pending_reask"] == {
        "position": 3,
        "exclude_annotators": [2],
        "reason": state["pending_reask"]["reason"],
    }
    restored = AnchorSearch.from_state(state)
    assert restored == search
    assert restored.next_probe() == search.next_probe()


def test_repeated_judgment_is_recorded_once() -> None:
    search = AnchorSearch(anchor_id="a", anchor_grade=2, b_item_ids=b_list(4))
    search.record(Outcome.B_BETTER, position=2, judgment_id="j1")
    search.record(Outcome.B_BETTER, position=2, judgment_id="j1")
    assert len(search.history) == 1


def test_record_rejects_a_position_outside_b_and_an_unknown_outcome() -> None:
    search = AnchorSearch(anchor_id="a", anchor_grade=2, b_item_ids=b_list(4))
    with pytest.raises(ValueError):
        search.record(Outcome.EQUAL, position=4)
    with pytest.raises(ValueError):
        search.record("better", position=0)
    assert search.history == []


def test_from_state_rejects_an_unknown_version() -> None:
    state = start([2], [1, 0]).to_state()
    with pytest.raises(ValueError):
        QuerySearch.from_state({**state, "version": 99})


def test_select_anchors_takes_the_lowest_ranked_item_of_each_grade_highest_grade_first() -> None:
    r_items = [
        ("r0", 0, 3),
        ("r1", 1, 3),
        ("r2", 2, 1),
        ("r3", 3, None),
        ("r4", 4, 3),
        ("r5", 5, 0),
    ]
    assert select_anchors(r_items) == [Anchor("r4", 3, 4), Anchor("r2", 1, 2), Anchor("r5", 0, 5)]
    assert select_anchors([]) == []
