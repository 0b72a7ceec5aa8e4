"""Iso-label anchor binary search of one query over a modality pair (R, B): a pure state machine.

Plain data in and out, no Django or torch; Django keeps a search's `to_state()` in a JSONField.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations
from typing import Any, NamedTuple

ItemId = int | str
AnnotatorId = int | str
JudgmentId = int | str
STATE_VERSION = 1
DEFAULT_MAX_ANSWERS = 3

# The model every rule below rests on. Relevance is an integer grade. Within B the upstream order
# is trusted, so true grades never rise along B. Comparing anchor a (grade g) with B[i], `b_better`
# says grade(B[i]) >= g + 1, `anchor_better` says <= g - 1 and `equal` says == g. Inside the search
# the scale is open at both ends (an item may beat a top-grade anchor); reported intervals are
# clamped to [0, max_grade]. What is implied is what every grading allowed by the kept answers
# agrees on.


class Outcome(StrEnum):
    """The answer to one compare task between an anchor and a B item."""

    B_BETTER = "b_better"
    ANCHOR_BETTER = "anchor_better"
    EQUAL = "equal"


class PairSource(StrEnum):
    HUMAN = "human"
    IMPLIED = "implied"


@dataclass(frozen=True)
class Anchor:
    """A graded item of the reference modality R; upstream_rank 0 is R's best item."""

    item_id: ItemId
    grade: int
    upstream_rank: int


@dataclass(frozen=True)
class Probe:
    """One compare task to create: anchor vs. B[b_position]."""

    anchor_id: ItemId
    b_position: int
    b_item_id: ItemId
    is_reask: bool
    reason: str
    exclude_annotators: tuple[AnnotatorId, ...] = ()


@dataclass(frozen=True)
class Answer:
    """One recorded answer; seq orders answers across all anchors of a query search."""

    seq: int
    position: int
    outcome: Outcome
    annotator: AnnotatorId | None = None
    is_reask: bool = False
    judgment_id: JudgmentId | None = None


@dataclass(frozen=True)
class Reask:
    position: int
    exclude_annotators: tuple[AnnotatorId, ...]
    reason: str


@dataclass(frozen=True)
class Contradiction:
    """Two answers (by seq) that no non-increasing grading of B can satisfy together."""

    first_seq: int
    second_seq: int
    reason: str


class PreferencePair(NamedTuple):
    better_id: ItemId
    worse_id: ItemId
    source: PairSource


class Equality(NamedTuple):
    b_item_id: ItemId
    anchor_id: ItemId
    source: PairSource


def select_anchors(r_items: Iterable[tuple[ItemId, int, int | None]]) -> list[Anchor]:
    """One anchor per grade present among R's graded items: the lowest-ranked item with that grade.

    `r_items` holds (item_id, upstream_rank, grade), rank 0 the best; ungraded items (grade None)
    are skipped. Anchors come highest grade first.
    """
    lowest: dict[int, Anchor] = {}
    for item_id, upstream_rank, grade in r_items:
        if grade is None:
            continue
        current = lowest.get(grade)
        if current is None or upstream_rank > current.upstream_rank:
            lowest[grade] = Anchor(item_id=item_id, grade=grade, upstream_rank=upstream_rank)
    return sorted(lowest.values(), key=lambda anchor: -anchor.grade)


def probe_bound(n_b: int) -> int:
    """Most probes one anchor's search needs when its answers agree with each other."""
    return math.ceil(math.log2(n_b + 1))


@dataclass
class AnchorSearch:
    """One anchor's binary search over B for its boundary: the first item not more relevant than it.

    B[0..lo-1] are known to beat the anchor and B[hi..] known not to; the boundary is in [lo, hi].
    `equal` means "not more relevant", so it moves hi to the probed position like `anchor_better`;
    it also pins that item's grade to the anchor's. Above a run of tied items the search goes on for
    the first item that does not beat the anchor; `iso_item` is the highest-ranked item kept equal.

    `history` and `waived` are the truth; the other fields are derived from them (inside a
    QuerySearch also from sibling anchors' answers, so record through it) and stored for readers.
    """

    anchor_id: ItemId
    anchor_grade: int
    b_item_ids: list[ItemId]
    max_answers: int = DEFAULT_MAX_ANSWERS
    history: list[Answer] = field(default_factory=list)
    # Positions whose re-ask the caller gave up on (no other annotator available).
    waived: list[int] = field(default_factory=list)
    lo: int = field(init=False, default=0)
    hi: int = field(init=False, default=0)
    boundary: int | None = field(init=False, default=None)
    iso_item: ItemId | None = field(init=False, default=None)
    contradictions: list[Contradiction] = field(init=False, default_factory=list)
    pending_reask: Reask | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.max_answers < 1:
            raise ValueError("max_answers must be at least 1")
        _replay_contradictions([self])
        _settle([self], len(self.b_item_ids))

    @property
    def is_done(self) -> bool:
        return self.lo >= self.hi and self.pending_reask is None

    @property
    def is_contradicted(self) -> bool:
        return bool(self.contradictions)

    def next_probe(self) -> Probe | None:
        """The pending re-ask, else the bisection probe; None once the boundary is known."""
        if self.pending_reask is not None:
            reask = self.pending_reask
            return Probe(
                anchor_id=self.anchor_id,
                b_position=reask.position,
                b_item_id=self.b_item_ids[reask.position],
                is_reask=True,
                reason=reask.reason,
                exclude_annotators=reask.exclude_annotators,
            )
        if self.lo >= self.hi:
            return None
        # The lower middle keeps every step to at most half of the hi - lo + 1 candidate boundaries,
        # which is what gives ceil(log2(n_B + 1)).
        mid = (self.lo + self.hi) // 2
        return Probe(
            anchor_id=self.anchor_id,
            b_position=mid,
            b_item_id=self.b_item_ids[mid],
            is_reask=False,
            reason=f"bisect: boundary in [{self.lo}, {self.hi}]",
        )

    def record(
        self,
        outcome: Outcome | str,
        *,
        position: int,
        annotator: AnnotatorId | None = None,
        judgment_id: JudgmentId | None = None,
    ) -> None:
        """Record an answer for this anchor alone; a repeated judgment_id is ignored."""
        _record(
            [self],
            self,
            outcome,
            position=position,
            annotator=annotator,
            judgment_id=judgment_id,
        )

    def waive_reask(self) -> None:
        """Give up the pending re-ask; the trust order decides its contradiction instead."""
        if self.pending_reask is not None:
            self.waived.append(self.pending_reask.position)
            _settle([self], len(self.b_item_ids))

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "anchor_id": self.anchor_id,
            "anchor_grade": self.anchor_grade,
            "b_item_ids": list(self.b_item_ids),
            "max_answers": self.max_answers,
            "history": [
                {
                    "seq": answer.seq,
                    "position": answer.position,
                    "outcome": answer.outcome.value,
                    "annotator": answer.annotator,
                    "is_reask": answer.is_reask,
                    "judgment_id": answer.judgment_id,
                }
                for answer in self.history
            ],
            "waived": list(self.waived),
            "lo": self.lo,
            "hi": self.hi,
            "boundary": self.boundary,
            "iso_item": self.iso_item,
            "contradictions": [
                {"first_seq": c.first_seq, "second_seq": c.second_seq, "reason": c.reason}
                for c in self.contradictions
            ],
            "pending_reask": None
            if self.pending_reask is None
            else {
                "position": self.pending_reask.position,
                "exclude_annotators": list(self.pending_reask.exclude_annotators),
                "reason": self.pending_reask.reason,
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AnchorSearch:
        _check_version(state)
        search = cls(
            anchor_id=state["anchor_id"],
            anchor_grade=state["anchor_grade"],
            b_item_ids=list(state["b_item_ids"]),
            max_answers=state["max_answers"],
            history=[
                Answer(
                    seq=row["seq"],
                    position=row["position"],
                    outcome=Outcome(row["outcome"]),
                    annotator=row["annotator"],
                    is_reask=row["is_reask"],
                    judgment_id=row["judgment_id"],
                )
                for row in state["history"]
            ],
            waived=list(state["waived"]),
        )
        # Restored as stored rather than replayed alone: they may rest on sibling anchors' answers.
        search.lo = state["lo"]
        search.hi = state["hi"]
        search.boundary = state["boundary"]
        search.iso_item = state["iso_item"]
        search.contradictions = [Contradiction(**row) for row in state["contradictions"]]
        reask = state["pending_reask"]
        search.pending_reask = (
            None
            if reask is None
            else Reask(
                position=reask["position"],
                exclude_annotators=tuple(reask["exclude_annotators"]),
                reason=reask["reason"],
            )
        )
        return search


@dataclass
class QuerySearch:
    """The anchor searches of one query over one pair (R, B), sharing what each answer implies.

    Anchors are kept highest grade first. Every answer narrows every anchor (a higher-grade anchor's
    boundary is never below a lower-grade one's), so later searches run inside earlier boundaries.
    """

    anchors: list[AnchorSearch]
    b_item_ids: list[ItemId]
    max_grade: int

    def __post_init__(self) -> None:
        ids = [anchor.anchor_id for anchor in self.anchors]
        if len(set(ids)) != len(ids):
            raise ValueError("anchor ids must be unique")
        if any(anchor.b_item_ids != self.b_item_ids for anchor in self.anchors):
            raise ValueError("all anchors must search the same B list")
        if any(not 0 <= anchor.anchor_grade <= self.max_grade for anchor in self.anchors):
            raise ValueError("anchor grades must lie in [0, max_grade]")
        self.anchors.sort(key=lambda anchor: -anchor.anchor_grade)
        _replay_contradictions(self.anchors)
        _settle(self.anchors, len(self.b_item_ids))

    @classmethod
    def start(
        cls,
        anchors: Sequence[Anchor],
        b_item_ids: Sequence[ItemId],
        *,
        max_grade: int,
        max_answers: int = DEFAULT_MAX_ANSWERS,
    ) -> QuerySearch:
        return cls(
            anchors=[
                AnchorSearch(
                    anchor_id=anchor.item_id,
                    anchor_grade=anchor.grade,
                    b_item_ids=list(b_item_ids),
                    max_answers=max_answers,
                )
                for anchor in anchors
            ],
            b_item_ids=list(b_item_ids),
            max_grade=max_grade,
        )

    @property
    def search_order(self) -> list[AnchorSearch]:
        """Median grade first, then each half: later searches then run inside one slice of B."""
        return [self.anchors[i] for i in _bisection_order(len(self.anchors))]

    @property
    def is_done(self) -> bool:
        return all(anchor.is_done for anchor in self.anchors)

    @property
    def contradictions(self) -> list[Contradiction]:
        found = [c for anchor in self.anchors for c in anchor.contradictions]
        return sorted(found, key=lambda c: (c.second_seq, c.first_seq))

    def anchor(self, anchor_id: ItemId) -> AnchorSearch:
        for anchor in self.anchors:
            if anchor.anchor_id == anchor_id:
                return anchor
        raise KeyError(anchor_id)

    def next_probe(self) -> Probe | None:
        """A pending re-ask holds every anchor back; else the next anchor in search order probes."""
        for anchor in self.anchors:
            if anchor.pending_reask is not None:
                return anchor.next_probe()
        for anchor in self.search_order:
            probe = anchor.next_probe()
            if probe is not None:
                return probe
        return None

    def record(
        self,
        outcome: Outcome | str,
        *,
        anchor_id: ItemId,
        position: int,
        annotator: AnnotatorId | None = None,
        judgment_id: JudgmentId | None = None,
    ) -> None:
        """Record an answer to (anchor, B[position]); a repeated judgment_id is ignored."""
        _record(
            self.anchors,
            self.anchor(anchor_id),
            outcome,
            position=position,
            annotator=annotator,
            judgment_id=judgment_id,
        )

    def revise(
        self, *, judgment_id: JudgmentId, outcome: Outcome | str, new_judgment_id: JudgmentId
    ) -> bool:
        """Replace the answer recorded for `judgment_id` by its revision, then re-derive everything.

        The revised answer keeps its place (seq, position, annotator): it is the same question,
        answered again by the same person. Every later answer stays (each is a fact about its own
        pair), and bounds, contradictions and the pending re-ask are recomputed from the whole
        history, so the search goes on from where the corrected evidence puts it. Returns False
        when nothing changed: `new_judgment_id` is recorded already (a repeated delivery), or no
        answer carries `judgment_id`.
        """
        outcome = Outcome(outcome)
        answers = [answer for anchor in self.anchors for answer in anchor.history]
        if any(answer.judgment_id == new_judgment_id for answer in answers):
            return False
        for anchor in self.anchors:
            for index, answer in enumerate(anchor.history):
                if answer.judgment_id == judgment_id:
                    anchor.history[index] = Answer(
                        seq=answer.seq, position=answer.position, outcome=outcome,
                        annotator=answer.annotator, is_reask=answer.is_reask,
                        judgment_id=new_judgment_id,
                    )  # fmt: skip
                    _replay_contradictions(self.anchors)
                    _settle(self.anchors, len(self.b_item_ids))
                    return True
        return False

    def waive_reask(self) -> None:
        """Give up the pending re-ask; the trust order decides its contradiction instead."""
        for anchor in self.anchors:
            if anchor.pending_reask is not None:
                anchor.waived.append(anchor.pending_reask.position)
        _settle(self.anchors, len(self.b_item_ids))

    def boundaries(self) -> dict[ItemId, int | None]:
        return {anchor.anchor_id: anchor.boundary for anchor in self.anchors}

    def iso_items(self) -> dict[ItemId, ItemId | None]:
        return {anchor.anchor_id: anchor.iso_item for anchor in self.anchors}

    def implied_grade_intervals(self) -> dict[ItemId, tuple[int, int]]:
        """Each B item's grade range allowed by the kept answers and B's order, within the scale."""
        evidence = _weigh(self.anchors, len(self.b_item_ids))
        return {
            item_id: (self._clamp(low), self._clamp(high))
            for item_id, low, high in zip(
                self.b_item_ids, evidence.lower, evidence.upper, strict=True
            )
        }

    def implied_pairs(self) -> list[PreferencePair]:
        """Every (B item, anchor) pair whose order the kept answers entail, without duplicates.

        B[i] beats anchor a when every allowed grading puts it above a's grade: B[0..k-1] for a's
        boundary k. a beats B[i] when every allowed grading puts it below a's grade: B items judged
        worse than a and those ranked below them, and B items at or below the boundary of a
        lower-grade anchor. A pair is `human` when its own compare answer was kept, else `implied`.
        Equal items give no pair (see `equalities`).
        """
        evidence = _weigh(self.anchors, len(self.b_item_ids))
        kept = {(id(q.anchor), q.position) for q in evidence.questions if q.is_kept_in_full}
        pairs: dict[tuple[ItemId, ItemId], PairSource] = {}
        for anchor in self.anchors:
            grade = anchor.anchor_grade
            for position, b_item_id in enumerate(self.b_item_ids):
                if evidence.lower[position] > grade:
                    key = (b_item_id, anchor.anchor_id)
                elif evidence.upper[position] < grade:
                    key = (anchor.anchor_id, b_item_id)
                else:
                    continue
                source = PairSource.HUMAN if (id(anchor), position) in kept else PairSource.IMPLIED
                if pairs.get(key) is not PairSource.HUMAN:
                    pairs[key] = source
        return [PreferencePair(better, worse, source) for (better, worse), source in pairs.items()]

    def equalities(self) -> list[Equality]:
        """B items pinned to an anchor's grade: judged equal (`human`) or squeezed (`implied`)."""
        evidence = _weigh(self.anchors, len(self.b_item_ids))
        judged = {
            (id(q.anchor), q.position)
            for q in evidence.questions
            if q.is_kept_in_full and q.outcome is Outcome.EQUAL
        }
        found: list[Equality] = []
        for anchor in self.anchors:
            grade = anchor.anchor_grade
            for position, b_item_id in enumerate(self.b_item_ids):
                if evidence.lower[position] == evidence.upper[position] == grade:
                    source = (
                        PairSource.HUMAN if (id(anchor), position) in judged else PairSource.IMPLIED
                    )
                    found.append(Equality(b_item_id, anchor.anchor_id, source))
        return found

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "max_grade": self.max_grade,
            "b_item_ids": list(self.b_item_ids),
            "anchors": [anchor.to_state() for anchor in self.anchors],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> QuerySearch:
        _check_version(state)
        return cls(
            anchors=[AnchorSearch.from_state(row) for row in state["anchors"]],
            b_item_ids=list(state["b_item_ids"]),
            max_grade=state["max_grade"],
        )

    def _clamp(self, grade: float) -> int:
        return int(min(max(grade, 0), self.max_grade))


# Internals: answers become bounds on B grades, and B's order spreads each bound along the list.


@dataclass(frozen=True)
class _Bound:
    """grade(B[position]) lies in [lower, upper]; infinities mean unbounded."""

    position: int
    lower: float
    upper: float


def _bound(grade: int, outcome: Outcome, position: int) -> _Bound:
    if outcome is Outcome.B_BETTER:
        return _Bound(position, grade + 1, math.inf)
    if outcome is Outcome.ANCHOR_BETTER:
        return _Bound(position, -math.inf, grade - 1)
    return _Bound(position, grade, grade)


def _conflicts(first: _Bound, second: _Bound) -> bool:
    if first.position == second.position:
        return first.lower > second.upper or second.lower > first.upper
    above, below = (first, second) if first.position < second.position else (second, first)
    # An item ranked above another is at least as relevant, so the lower one cannot need more.
    return below.lower > above.upper


def _tighten(lower: list[float], upper: list[float], bound: _Bound) -> None:
    """Add a bound in place: a lower bound holds for every item above its own, an upper one below.

    Both lists stay monotone along B, so each walk stops at the first item already as tight.
    """
    i = bound.position
    while i >= 0 and lower[i] < bound.lower:
        lower[i] = bound.lower
        i -= 1
    i = bound.position
    while i < len(upper) and upper[i] > bound.upper:
        upper[i] = bound.upper
        i += 1


@dataclass(eq=False)
class _Question:
    """All answers to one (anchor, position), settled once when the evidence is weighed."""

    anchor: AnchorSearch
    position: int
    answers: list[Answer]
    first_seq: int = field(init=False)
    is_closed: bool = field(init=False)
    strength: int = field(init=False)
    # The plurality answer; None while a tie waits for another annotator.
    outcome: Outcome | None = field(init=False)
    full_bound: _Bound | None = field(init=False)
    kept: _Bound | None = None

    def __post_init__(self) -> None:
        self.first_seq = self.answers[0].seq
        counts = Counter(answer.outcome for answer in self.answers)
        # Two annotators who agree close a question: when it still contradicts another, the
        # contradiction is in B's upstream order (truth is not monotone along it), which no
        # further answer can mend; asking a third time would only spend the budget.
        is_confirmed = len(self.answers) >= 2 and len(counts) == 1
        self.is_closed = (
            len(self.answers) >= self.anchor.max_answers
            or self.position in self.anchor.waived
            or is_confirmed
        )
        self.strength = max(counts.values())
        leaders = [outcome for outcome, count in counts.items() if count == self.strength]
        if len(leaders) == 1:
            self.outcome = leaders[0]
        elif self.is_closed:
            # No one left to break the tie: keep the first answer, the search already built on it.
            self.outcome = next(
                answer.outcome for answer in self.answers if answer.outcome in leaders
            )
        else:
            self.outcome = None
        self.full_bound = (
            None
            if self.outcome is None
            else _bound(self.anchor.anchor_grade, self.outcome, self.position)
        )

    @property
    def is_kept_in_full(self) -> bool:
        return self.kept is not None and self.kept == self.full_bound

    def candidate_bounds(self) -> list[_Bound]:
        if self.full_bound is None:
            return []
        if self.outcome is Outcome.B_BETTER:
            return [self.full_bound]
        # anchor_better and equal both say "not more relevant", all the search itself needs. Keeping
        # that part when only the strict part conflicts means a position once asked stays decided.
        return [self.full_bound, _Bound(self.position, -math.inf, self.anchor.anchor_grade)]


@dataclass
class _Evidence:
    questions: list[_Question]
    lower: list[float]
    upper: list[float]


def _weakness(question: _Question) -> tuple[int, int]:
    # Fewer votes first, then the question asked later: it is the one that broke consistency.
    return (question.strength, -question.first_seq)


def _questions(anchors: Sequence[AnchorSearch]) -> list[_Question]:
    questions: list[_Question] = []
    for anchor in anchors:
        by_position: dict[int, list[Answer]] = {}
        for answer in anchor.history:
            by_position.setdefault(answer.position, []).append(answer)
        questions.extend(
            _Question(anchor, position, answers) for position, answers in by_position.items()
        )
    return questions


def _weigh(anchors: Sequence[AnchorSearch], n: int) -> _Evidence:
    """Decide what is believed when settled questions still contradict each other.

    A question (anchor, position) is settled by the plurality of its answers. Settled questions are
    taken strongest first (most votes for their outcome), then oldest, and each is kept only if it
    fits those kept before it, else its "not more relevant" part if only the strict part conflicts.
    """
    questions = _questions(anchors)
    settled = [q for q in questions if q.outcome is not None]
    lower = [-math.inf] * n
    upper = [math.inf] * n
    for question in sorted(settled, key=lambda q: (-q.strength, q.first_seq)):
        for bound in question.candidate_bounds():
            # Against bounds that fit together, one more fits iff it fits the tightened ones there.
            if bound.lower <= upper[bound.position] and bound.upper >= lower[bound.position]:
                question.kept = bound
                _tighten(lower, upper, bound)
                break
    return _Evidence(questions, lower, upper)


def _choose_reask(questions: Sequence[_Question]) -> tuple[_Question, Reask] | None:
    """The one question to ask again, of someone who has not answered it, before the search goes on.

    A tied question needs a tie-breaker. Of two settled questions that contradict each other, the
    weaker (fewer votes, then asked later) is asked again, or the other when the weaker already has
    max_answers answers or was waived; when both are closed the trust order of `_weigh` decides.
    """
    candidates: list[tuple[_Question, str]] = []
    for question in questions:
        if question.outcome is None:
            counts = Counter(answer.outcome.value for answer in question.answers)
            candidates.append(
                (question, f"tied answers for {_describe_question(question)}: {dict(counts)}")
            )
    settled = [q for q in questions if q.outcome is not None]
    for first, second in combinations(settled, 2):
        assert first.full_bound is not None and second.full_bound is not None
        if not _conflicts(first.full_bound, second.full_bound):
            continue
        for pick, other in sorted(
            [(first, second), (second, first)], key=lambda pair: _weakness(pair[0])
        ):
            if not pick.is_closed:
                reason = f"{_describe_question(pick)} contradicts {_describe_question(other)}"
                candidates.append((pick, reason))
                break
    if not candidates:
        return None
    question, reason = min(candidates, key=lambda candidate: _weakness(candidate[0]))
    exclude = tuple(dict.fromkeys(a.annotator for a in question.answers if a.annotator is not None))
    return question, Reask(position=question.position, exclude_annotators=exclude, reason=reason)


def _settle(anchors: Sequence[AnchorSearch], n: int) -> None:
    """Recompute every derived field of the anchors (B of length n) from all their answers."""
    evidence = _weigh(anchors, n)
    reask = _choose_reask(evidence.questions)
    for anchor in anchors:
        grade = anchor.anchor_grade
        # Propagated bounds are monotone along B: "known better" is a prefix, "known not" a suffix.
        anchor.lo = sum(1 for low in evidence.lower if low > grade)
        first_not_better = next((i for i, high in enumerate(evidence.upper) if high <= grade), n)
        # Kept bounds never conflict, so this max is only a guard.
        anchor.hi = max(anchor.lo, first_not_better)
        anchor.pending_reask = reask[1] if reask is not None and reask[0].anchor is anchor else None
        anchor.boundary = anchor.lo if anchor.is_done else None
        equal_positions = [
            q.position
            for q in evidence.questions
            if q.anchor is anchor and q.is_kept_in_full and q.outcome is Outcome.EQUAL
        ]
        anchor.iso_item = anchor.b_item_ids[min(equal_positions)] if equal_positions else None


def _record(
    anchors: Sequence[AnchorSearch],
    target: AnchorSearch,
    outcome: Outcome | str,
    *,
    position: int,
    annotator: AnnotatorId | None,
    judgment_id: JudgmentId | None,
) -> None:
    outcome = Outcome(outcome)
    if not 0 <= position < len(target.b_item_ids):
        raise ValueError(f"position {position} is outside B (length {len(target.b_item_ids)})")
    answers = [(anchor, answer) for anchor in anchors for answer in anchor.history]
    # A judgment delivered twice (a retried Celery task) must count once.
    if judgment_id is not None and any(answer.judgment_id == judgment_id for _, answer in answers):
        return
    new = Answer(
        seq=1 + max((answer.seq for _, answer in answers), default=-1),
        position=position,
        outcome=outcome,
        annotator=annotator,
        is_reask=any(answer.position == position for answer in target.history),
        judgment_id=judgment_id,
    )
    for anchor, earlier in sorted(answers, key=lambda pair: pair[1].seq):
        contradiction = _contradiction(anchor, earlier, target, new)
        if contradiction is not None:
            target.contradictions.append(contradiction)
    target.history.append(new)
    _settle(anchors, len(target.b_item_ids))


def _contradiction(
    first_anchor: AnchorSearch, first: Answer, second_anchor: AnchorSearch, second: Answer
) -> Contradiction | None:
    first_bound = _bound(first_anchor.anchor_grade, first.outcome, first.position)
    second_bound = _bound(second_anchor.anchor_grade, second.outcome, second.position)
    if not _conflicts(first_bound, second_bound):
        return None
    reason = (
        f"#{first.seq} {_describe(first_anchor, first.position, first.outcome)} and "
        f"#{second.seq} {_describe(second_anchor, second.position, second.outcome)} "
        "cannot both hold with B in relevance order"
    )
    return Contradiction(first_seq=first.seq, second_seq=second.seq, reason=reason)


def _replay_contradictions(anchors: Sequence[AnchorSearch]) -> None:
    for anchor in anchors:
        anchor.contradictions = []
    answers = sorted(
        ((anchor, answer) for anchor in anchors for answer in anchor.history),
        key=lambda pair: pair[1].seq,
    )
    for (first_anchor, first), (second_anchor, second) in combinations(answers, 2):
        contradiction = _contradiction(first_anchor, first, second_anchor, second)
        if contradiction is not None:
            second_anchor.contradictions.append(contradiction)
    for anchor in anchors:
        anchor.contradictions.sort(key=lambda c: (c.second_seq, c.first_seq))


def _describe(anchor: AnchorSearch, position: int, outcome: Outcome) -> str:
    subject = f"anchor {anchor.anchor_id!r} (grade {anchor.anchor_grade})"
    if outcome is Outcome.B_BETTER:
        return f"B[{position}] better than {subject}"
    if outcome is Outcome.ANCHOR_BETTER:
        return f"{subject} better than B[{position}]"
    return f"B[{position}] equal to {subject}"


def _describe_question(question: _Question) -> str:
    return f"B[{question.position}] vs anchor {question.anchor.anchor_id!r}"


def _bisection_order(count: int) -> list[int]:
    order: list[int] = []
    spans = [(0, count)]
    while spans:
        lo, hi = spans.pop(0)
        if lo < hi:
            mid = (lo + hi) // 2
            order.append(mid)
            spans.extend([(lo, mid), (mid + 1, hi)])
    return order


def _check_version(state: dict[str, Any]) -> None:
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported search state version {state.get('version')!r}")
