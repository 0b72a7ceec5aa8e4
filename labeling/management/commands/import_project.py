"""python manage.py import_project PROJECT FILE: all-or-nothing import of a .jsonl or .zip."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from labeling.errors import ImportFailed
from labeling.imports import import_project_file
from labeling.models import Project


class Command(BaseCommand):
    help = "Import queries and items from a .jsonl file or a .zip (JSONL + images). All or nothing."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--create", action="store_true", help="create the project if missing")
        parser.add_argument("--name", help="name of a project created with --create")
        parser.add_argument(
            "--modalities", default="text,image", help="modalities of a created project"
        )

    def handle(
        self,
        *args,
        project: str,
        file: Path,
        create: bool,
        name: str | None,
        modalities: str,
        **options,
    ):
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        target = Project.objects.filter(slug=project).first()
        created = target is None
        if created and not create:
            raise CommandError(f"No project '{project}'. Create it in the admin or pass --create.")
        try:
            # A project made by --create is part of the import: a refused file leaves no project.
            with transaction.atomic():
                if created:
                    target = Project.objects.create(
                        slug=project,
                        name=name or project,
                        modalities=[m.strip() for m in modalities.split(",") if m.strip()],
                    )
                result = import_project_file(project=target, file=file)
        except ImportFailed as exc:
            for problem in exc.problems:
                self.stderr.write(f"  {problem}")
            raise CommandError(exc.message) from exc
        if created:
            self.stdout.write(f"Created project '{project}' with modalities {target.modalities}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.queries_created} queries and {result.items_created} items "
                f"({result.images_stored} images) into '{target.slug}'."
            )
        )
