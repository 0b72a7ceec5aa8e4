"""python manage.py embed_items PROJECT: encode items once, fill missing upstream scores."""

from django.core.management.base import BaseCommand

from ranking import services

from ._project import project_or_error


class Command(BaseCommand):
    help = "Encode the project's items and queries (MiniLM, EfficientNet-Lite0) that have no embedding yet."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--batch-size", type=int, default=64)

    def handle(self, *args, project: str, batch_size: int, **options):
        target = project_or_error(project)

        def progress(done: int, total: int) -> None:
            bar = "#" * int(30 * done / total)
            self.stdout.write(f"\r  [{bar:<30}] {done}/{total} items", ending="")
            self.stdout.flush()

        done = services.embed_items(project=target, batch_size=batch_size, progress=progress)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Embedded {done} items of '{target.slug}'."))
