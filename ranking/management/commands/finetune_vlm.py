"""python manage.py finetune_vlm PROJECT --name NAME: LoRA-fine-tune the project's vision-language
model on its human grades and pairs (GPU; test-sized models only on CPU)."""

from django.core.management.base import BaseCommand, CommandError

from ranking.ml.vlm import VlmError
from ranking.vlm_scoring import VlmNotConfigured, fine_tune_project

from ._project import project_or_error


class Command(BaseCommand):
    help = (
        "Fine-tune the project's vision-language model with LoRA on its human grades and "
        "preference pairs; the merged model is written to PAGEWISE_VLM_ROOT/NAME."
    )

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--name", required=True, help="new model directory name")
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--lr", type=float, default=1e-4)
        parser.add_argument("--rank", type=int, default=8, help="LoRA rank")

    def handle(self, *args, project, name, epochs, lr, rank, **options):
        project = project_or_error(project)
        if epochs < 1 or rank < 1 or not lr > 0:
            raise CommandError("--epochs and --rank must be at least 1, --lr above 0")
        try:
            result = fine_tune_project(project=project, name=name, epochs=epochs, lr=lr, rank=rank)
        except (VlmError, VlmNotConfigured) as exc:
            raise CommandError(str(exc)) from None
        losses = ", ".join(f"{loss:.4f}" for loss in result.losses)
        self.stdout.write(
            f"Fine-tuned {result.parameters_trained:,} LoRA parameters in {result.steps} steps "
            f"(loss per epoch: {losses}); model written to {result.path}. Set the project's "
            f"vision-language model to '{name}' on its settings page to use it."
        )
