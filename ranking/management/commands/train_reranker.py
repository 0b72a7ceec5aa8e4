"""python manage.py train_reranker PROJECT: train a version now, activate it if not worse on gold."""

from django.core.management.base import BaseCommand, CommandError

from ranking import services

from ._project import project_or_error


class Command(BaseCommand):
    help = "Train a whole-page reranker version on the project's labels (progress per epoch)."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--threads", type=int, default=None, help="torch CPU threads (default: all)"
        )

    def handle(self, *args, project: str, seed: int, threads: int | None, **options):
        target = project_or_error(project)
        try:
            version = services.train_version(
                project=target, seed=seed, threads=threads, verbose=True
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if version is None:
            raise CommandError(f"Another training of '{target.slug}' is running.")
        ndcg = "n/a" if version.gold_ndcg10 is None else f"{version.gold_ndcg10:.4f}"
        self.stdout.write(
            f"Version {version.number}: {version.status}; NDCG@10 on {version.metrics.get('measured_on')} {ndcg}; "
            f"baselines {version.metrics.get('baselines')}; {version.training.get('seconds')} s"
        )
        if version.message:
            self.stdout.write(version.message)
