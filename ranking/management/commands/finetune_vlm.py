"""python manage.py finetune_vlm PROJECT: fine-tune the project's vision-language scorer as a new
scorer version now (GPU; test-sized models only on CPU), activated only if not worse on gold."""

from django.core.management.base import BaseCommand, CommandError

from ranking.ml.vlm import VlmError
from ranking.vlm_scoring import (
    FineTuneBusy,
    VlmNotConfigured,
    create_fine_tune_version,
    fine_tune_version,
)

from ._project import project_or_error


class Command(BaseCommand):
    help = (
        "Fine-tune the project's vision-language scorer with LoRA on its human grades and "
        "preference pairs as a new scorer version; it becomes the project's scorer only when "
        "its gold NDCG@10 is not below the scorer it was tuned from."
    )

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--lr", type=float, default=1e-4)
        parser.add_argument("--rank", type=int, default=8, help="LoRA rank")

    def handle(self, *args, project, epochs, lr, rank, **options):
        project = project_or_error(project)
        try:
            version = create_fine_tune_version(project=project, epochs=epochs, lr=lr, rank=rank)
        except (VlmError, VlmNotConfigured, FineTuneBusy, ValueError) as exc:
            raise CommandError(str(exc)) from None
        version = fine_tune_version(version=version)
        if version.status == version.Status.FAILED:
            raise CommandError(f"scorer v{version.number} failed: {version.message}")

        def gold(value):
            return "no gold" if value is None else f"{value:.4f}"

        self.stdout.write(
            f"Scorer v{version.number} ({version.get_status_display()}): trained on "
            f"{version.graded_items} graded items and {version.pairs} pairs in "
            f"{version.steps_done} steps; gold NDCG@10 {gold(version.gold_ndcg10)} vs "
            f"{gold(version.base_gold_ndcg10)} for its base. {version.message}".strip()
        )
