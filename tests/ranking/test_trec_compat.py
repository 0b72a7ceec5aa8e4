"""Every NDCG names its gain, and the trec_eval-compatible figure is what ir_measures (trec_eval
itself, through pytrec_eval) reads from the exported qrels and run, to 1e-9."""

from __future__ import annotations

import ir_measures
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ir_measures import Qrel, ScoredDoc, nDCG

from labeling.models import Query, Split
from ranking import services
from ranking.ml.metrics import mean_trec_ndcg_at_k
from ranking.ml.synthetic import WorldConfig, make_world
from web import exports

from .test_services import grade_every_item

# One query: (score, grade) per document; scores from a small set so that ties are common,
# grade -1 = not judged (in the run, not in the qrels).
QUERY = st.lists(
    st.tuples(st.sampled_from([0.0, 0.5, 1.0, 1.5, -2.25, 3.0]), st.integers(-1, 4)),
    min_size=1,
    max_size=14,
)


def _ir_measures(measure, queries, docnos) -> float:
    qrels, run = [], []
    for q, (rows, names) in enumerate(zip(queries, docnos, strict=True)):
        for (score, grade), name in zip(rows, names, strict=True):
            run.append(ScoredDoc(f"q{q}", name, score))
            if grade >= 0:
                qrels.append(Qrel(f"q{q}", name, grade))
    return ir_measures.calc_aggregate([measure], qrels, run)[measure]


@settings(max_examples=60, deadline=None)
@given(queries=st.lists(QUERY, min_size=1, max_size=5), data=st.data())
def test_trec_ndcg_equals_ir_measures_with_ties_unjudged_and_unrelevant_queries(queries, data):
    # Every query needs a judgment to be in the qrels at all (trec_eval skips the others).
    queries = [q for q in queries if any(g >= 0 for _, g in q)]
    if not queries:
        return
    docnos = [data.draw(st.permutations([f"d{i}" for i in range(len(q))])) for q in queries]
    for k in (5, 10):
        ours = mean_trec_ndcg_at_k(
            [np.array([s for s, _ in q]) for q in queries],
            [np.array([g for _, g in q]) for q in queries],
            docnos,
            k,
        )
        assert ours == pytest.approx(_ir_measures(nDCG @ k, queries, docnos), abs=1e-9)


@pytest.fixture
def trained_version(project, make_user):
    world = make_world(
        WorldConfig(n_queries=14, items_per_query=12, modality_shares=(0.6, 0.4), seed=5)
    )
    settings = {"epochs": 3, "hidden": 16, "layers": 1, "heads": 2, "patience": 3}
    grade_every_item(project, make_user("sim"), world, gold_queries=6, training_settings=settings)
    version = services.train_version(project=project, seed=0)
    assert version.status == version.Status.ACTIVE
    return project, version


@pytest.mark.django_db
def test_stored_ndcgs_name_their_gain_and_match_ir_measures_on_the_exports(trained_version):
    project, version = trained_version
    gold = set(
        Query.objects.filter(project=project, split=Split.GOLD).values_list(
            "external_id", flat=True
        )
    )
    qrels = [
        Qrel(q, d, int(g))
        for q, _, d, g in (line.split() for line in exports.qrels(project))
        if q in gold
    ]
    run = [
        ScoredDoc(q, d, float(s))
        for q, _, d, _, s, _ in (line.split() for line in exports.run_file(project, version))
        if q in gold
    ]
    assert version.ndcg_gain == version.metrics["ndcg_gain"] == "exponential"
    assert version.metrics["measured_on"] == "gold"

    linear = nDCG @ 10
    assert version.gold_trec_ndcg10 == pytest.approx(
        ir_measures.calc_aggregate([linear], qrels, run)[linear], abs=1e-9
    )
    assert version.metrics["trec_ndcg@5"] == pytest.approx(
        ir_measures.calc_aggregate([nDCG @ 5], qrels, run)[nDCG @ 5], abs=1e-9
    )
    # The product's figure: gain 2^g - 1, over the gold queries that have a relevant item.
    exponential = nDCG(gains={g: 2**g - 1 for g in range(project.max_grade + 1)}) @ 10
    relevant = {q.query_id for q in qrels if q.relevance > 0}
    per_query = [
        m.value for m in ir_measures.iter_calc([exponential], qrels, run) if m.query_id in relevant
    ]
    assert version.gold_ndcg10 == pytest.approx(float(np.mean(per_query)), abs=1e-9)
    assert version.gold_ndcg10 != pytest.approx(version.gold_trec_ndcg10, abs=1e-6)


@pytest.mark.django_db
def test_versions_api_gives_the_linear_figure_beside_the_named_gain(
    trained_version, client, make_user
):
    project, version = trained_version
    client.force_login(make_user("sci", role="scientist", project=project))
    row = client.get(f"/api/projects/{project.slug}/versions/").json()[0]
    assert row["ndcg_gain"] == "exponential"
    assert row["gold_ndcg10"] == version.gold_ndcg10
    assert row["gold_trec_ndcg10"] == version.gold_trec_ndcg10 is not None
