"""LoRA fine-tuning of the vision-language scorer, on the tiny random model on CPU."""

import numpy as np
import pytest
from PIL import Image

from ranking.ml.vlm import VlmItem, VlmScorer
from ranking.ml.vlm_finetune import FineTuneRefused, GradeExample, PreferenceExample, fine_tune

GRADES = ["not relevant", "somewhat relevant", "relevant", "highly relevant", "perfect"]


def _scorer(path):
    return VlmScorer(path, grade_names=GRADES, device="cpu", batch_size=4)


def test_fine_tuning_moves_grades_towards_the_labels_and_saves_a_loadable_model(
    tiny_vlm_path, tmp_path
):
    scorer = _scorer(tiny_vlm_path)
    red = Image.new("RGB", (32, 32), (220, 20, 20))
    relevant = [VlmItem(text="red cat"), VlmItem(text="red cat photo", image=red)]
    irrelevant = [VlmItem(text="green river"), VlmItem(text="the city")]
    before = scorer.score("red cat", relevant + irrelevant).expected
    grades = [GradeExample("red cat", item, 4) for item in relevant] + [
        GradeExample("red cat", item, 0) for item in irrelevant
    ]
    pairs = [PreferenceExample("red cat", relevant[0], irrelevant[0])]
    result = fine_tune(
        scorer, grades, pairs, out_dir=tmp_path / "tuned", epochs=15, lr=3e-2, rank=4
    )
    after = scorer.score("red cat", relevant + irrelevant).expected
    assert result.steps == 15 * 2 and result.parameters_trained > 0
    assert result.losses[-1] < result.losses[0]
    assert after[:2].mean() - after[2:].mean() > before[:2].mean() - before[2:].mean() + 0.5
    # The merged model is an ordinary model directory: loaded as users load one, same scores.
    reloaded = _scorer(tmp_path / "tuned").score("red cat", relevant + irrelevant).expected
    np.testing.assert_allclose(reloaded, after, atol=1e-4)
    assert not (tmp_path / "tuned" / "adapter_config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tuned"], "no temporary directory left"


def test_a_model_too_large_for_a_cpu_is_refused_with_the_reason(tiny_vlm_path, tmp_path):
    scorer = _scorer(tiny_vlm_path)
    example = [GradeExample("red cat", VlmItem(text="red cat"), 4)]
    with pytest.raises(FineTuneRefused, match="runs on a GPU.*PAGEWISE_TORCH_DEVICE=cuda"):
        fine_tune(scorer, example, out_dir=tmp_path / "x", max_cpu_parameters=1000)
    with pytest.raises(FineTuneRefused, match="nothing to learn"):
        fine_tune(scorer, [], out_dir=tmp_path / "x")
    with pytest.raises(FineTuneRefused, match="outside the scorer's grade scale"):
        fine_tune(scorer, [GradeExample("q", VlmItem(text="a"), 7)], out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_finetune_command_learns_from_a_projects_grades_and_writes_a_new_model(
    project, make_user, settings, tiny_vlm_path, tmp_path
):
    from django.core.management import CommandError, call_command

    from ranking.ml.synthetic import WorldConfig, make_world
    from tests.ranking.test_services import grade_every_item

    settings.PAGEWISE_VLM_PATH = str(tiny_vlm_path)
    settings.PAGEWISE_VLM_ROOT = tmp_path / "models"
    world = make_world(
        WorldConfig(n_queries=6, items_per_query=4, modality_shares=(0.5, 0.5), seed=2)
    )
    grade_every_item(project, make_user("sim"), world, gold_queries=2, training_settings={})
    call_command("finetune_vlm", project.slug, "--name", "tuned", "--lr", "1e-2")
    loaded = VlmScorer(tmp_path / "models" / "tuned", grade_names=project.grade_names)
    assert loaded.score("q", [VlmItem(text="a")]).expected.shape == (1,)
    with pytest.raises(CommandError, match="not a model directory name"):
        call_command("finetune_vlm", project.slug, "--name", "../x")
    with pytest.raises(CommandError, match="No project"):
        call_command("finetune_vlm", "nope", "--name", "x")
