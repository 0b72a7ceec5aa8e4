"""A search whose answers contradict each other, built by the real search state machine."""

from __future__ import annotations

from active_selection import search as pure
from active_selection.models import AnchorSearch
from labeling.models import Item, Project, Query


def contradicted_search(project: Project, annotators) -> tuple[AnchorSearch, list[Item]]:
    """Query "qc": a text anchor graded 2 and four images; the image ranked 2nd is said to beat
    the anchor by one annotator, while the image ranked 1st is said to lose to it by another —
    impossible with the images in relevance order."""
    query = Query.objects.create(project=project, external_id="qc", text="red bicycle")
    anchor = Item.objects.create(
        project=project, query=query, external_id="qc-t1", modality="text", upstream_rank=1,
        title="Red bicycles for sale", text="A shop page listing red city bicycles. " * 20,
    )  # fmt: skip
    images = [
        Item.objects.create(
            project=project,
            query=query,
            external_id=f"qc-i{rank}",
            modality="image",
            upstream_rank=rank,
            title=f"Bicycle photo {rank}",
            text=f"Photo {rank} of a bicycle.",
        )  # fmt: skip
        for rank in range(1, 5)
    ]
    state = pure.QuerySearch.start(
        [pure.Anchor(anchor.pk, 2, 0)], [i.pk for i in images], max_grade=project.max_grade
    )
    state.record(
        pure.Outcome.ANCHOR_BETTER, anchor_id=anchor.pk, position=0, annotator=annotators[0].pk
    )
    state.record(pure.Outcome.B_BETTER, anchor_id=anchor.pk, position=1, annotator=annotators[1].pk)
    assert state.contradictions
    search = AnchorSearch.objects.create(
        project=project, query=query, reference_modality="text", other_modality="image",
        state=state.to_state(), probes_answered=2, contradictions=len(state.contradictions),
    )  # fmt: skip
    return search, [anchor, *images]
