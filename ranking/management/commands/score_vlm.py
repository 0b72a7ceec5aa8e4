"""python manage.py score_vlm PROJECT: score the project's items with its vision-language model now
(what the worker does after an import or a settings change), reading only what the cache lacks."""

from django.core.management.base import BaseCommand, CommandError

from ranking.vlm_scoring import score_items

from ._project import project_or_error


class Command(BaseCommand):
    help = "Score a project's items with its vision-language model (cached; see README)."

    def add_arguments(self, parser):
        parser.add_argument("project")

    def handle(self, *args, project, **options):
        run = score_items(project=project_or_error(project))
        if run.status != run.Status.DONE:
            raise CommandError(f"Scoring failed: {run.message}")
        self.stdout.write(
            f"{run.items_done} of {run.items_total} items scored ({run.mode}, {run.scorer}): "
            f"{run.items_scored} read by the model, the rest from the cache, {run.seconds:.1f} s."
        )
