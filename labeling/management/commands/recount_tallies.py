"""python manage.py recount_tallies [SLUG ...]: recount projects' tallies (labeling.tally) from
their rows and say which figures had drifted; every project when no slug is given."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Project
from labeling.tally import recount_tally, tallied_figures


class Command(BaseCommand):
    help = "Recount the dashboard figures kept by triggers (ProjectTally) from the rows."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*")

    def handle(self, *args, slugs, **options):
        projects = Project.objects.order_by("pk")
        if slugs:
            projects = projects.filter(slug__in=slugs)
            missing = set(slugs) - set(projects.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No project {', '.join(sorted(missing))}.")
        for project in projects:
            before = recount_tally(project=project)
            after = tallied_figures(project=project)
            drift = {
                name: (before.get(name), n) for name, n in after.items() if before.get(name) != n
            }
            self.stdout.write(f"{project.slug}: " + (f"recounted {drift}" if drift else "right"))
