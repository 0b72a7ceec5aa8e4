"""The lead's review queue (top floor: reads labeling and active_selection): items whose
annotators gave different grades, and answers of a search that contradict each other, each with
the full items and every answer behind it. The lead's final grade (labeling.Adjudication) is the
item's training label from then on."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from statistics import median_low

from django.contrib.auth import get_user_model

from active_selection.models import AnchorSearch
from labeling.models import Adjudication, Item, Project
from web.dashboard import disagreements

OUTCOME_WORDS = {
    "b_better": "more relevant than",
    "anchor_better": "less relevant than",
    "equal": "as relevant as",
}


@dataclass
class Answer:
    annotator: str
    text: str
    grade: int | None = None


@dataclass
class Entry:
    kind: str  # "grades" or "contradiction"
    item: Item
    reason: str
    answers: list[Answer] = field(default_factory=list)
    others: list[Item] = field(default_factory=list)  # further items an answer refers to
    lower_median: int | None = None
    count: int = 0
    adjudicated: int | None = None


def review_queue(*, project: Project, limit: int = 200) -> list[Entry]:
    """Grade disagreements first (query, modality, rank order), then contradictions by search."""
    entries: list[Entry] = []
    names = project.grade_names
    for row in disagreements(project=project, limit=limit):
        grades = [g for _, g in row["grades"]]
        entries.append(
            Entry(
                kind="grades",
                item=row["item"],
                reason=f"{len(grades)} annotators graded this item differently on the same page.",
                answers=[
                    Answer(user, f"{grade} · {_name(names, grade)}", grade)
                    for user, grade in row["grades"]
                ],
                lower_median=median_low(grades),
                count=len(grades),
                adjudicated=row["adjudicated"],
            )
        )
    entries.extend(_contradictions(project=project, limit=limit))
    return entries[:limit]


def _contradictions(*, project: Project, limit: int) -> list[Entry]:
    searches = list(
        AnchorSearch.objects.filter(project=project, contradictions__gt=0)
        .select_related("query")
        .order_by("query__external_id", "pk")[:limit]
    )
    found: list[tuple[AnchorSearch, dict, dict, str]] = []
    item_ids: set = set()
    user_ids: set = set()
    for search in searches:
        state = search.state or {}
        b_items = state.get("b_item_ids", [])
        by_seq = {}
        for anchor in state.get("anchors", []):
            for answer in anchor.get("history", []):
                by_seq[answer["seq"]] = {
                    "anchor": anchor["anchor_id"],
                    "grade": anchor["anchor_grade"],
                    "item": b_items[answer["position"]],
                    "outcome": answer["outcome"],
                    "annotator": answer.get("annotator"),
                }
        for anchor in state.get("anchors", []):
            for contradiction in anchor.get("contradictions", []):
                first = by_seq.get(contradiction["first_seq"])
                second = by_seq.get(contradiction["second_seq"])
                if first is None or second is None:
                    continue
                found.append((search, first, second, contradiction.get("reason", "")))
                item_ids.update([first["anchor"], first["item"], second["anchor"], second["item"]])
                user_ids.update([first["annotator"], second["annotator"]])
    items = Item.objects.filter(pk__in=item_ids).select_related("query").in_bulk()
    decided = dict(
        Adjudication.objects.filter(item_id__in=item_ids).values_list("item_id", "grade")
    )
    users = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    entries = []
    seen: Counter = Counter()
    for search, first, second, reason in found:
        # The item to decide: the one whose answer broke consistency (the later answer's).
        subject = items.get(second["item"])
        if subject is None or seen[(search.pk, subject.pk)]:
            continue
        seen[(search.pk, subject.pk)] += 1
        answers = []
        for answer in (first, second):
            anchor, other = items.get(answer["anchor"]), items.get(answer["item"])
            if anchor is None or other is None:
                continue
            answers.append(
                Answer(
                    users.get(answer["annotator"], "—"),
                    f"“{other.title or other.external_id}” ({other.modality}) is "
                    f"{OUTCOME_WORDS.get(answer['outcome'], answer['outcome'])} "
                    f"“{anchor.title or anchor.external_id}” ({anchor.modality}, graded "
                    f"{answer['grade']})",
                )
            )
        others = [
            items[i]
            for i in dict.fromkeys([first["anchor"], first["item"], second["anchor"]])
            if i in items and i != subject.pk
        ]
        entries.append(
            Entry(
                kind="contradiction",
                item=subject,
                reason=f"Search {search.reference_modality}→{search.other_modality} of query "
                f"{search.query.external_id}: {reason}",
                answers=answers,
                others=others,
                adjudicated=decided.get(subject.pk),
            )
        )
    return entries


def _name(names: list[str], grade: int) -> str:
    return names[grade] if 0 <= grade < len(names) else "?"


def counts_by_kind(entries: list[Entry]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for entry in entries:
        counts[entry.kind] += 1
    return dict(counts)
