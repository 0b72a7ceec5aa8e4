from django.core.management.base import CommandError

from labeling.models import Project


def project_or_error(slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"No project '{slug}'.")
    return project
