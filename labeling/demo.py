"""Loading the demo project: built as a real import zip, so the demo exercises the import path."""

from __future__ import annotations

import io
import json
import zipfile

from django.db import transaction

from . import demo_content
from .imports import import_project_file
from .models import Project
from .services import add_member


def demo_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        lines = "\n".join(json.dumps(record) for record in demo_content.demo_records())
        archive.writestr("demo.jsonl", lines + "\n")
        for path, data in demo_content.demo_images().items():
            archive.writestr(path, data)
    return buffer.getvalue()


def load_demo() -> tuple[Project, bool]:
    """Create the demo project, its data and users; return (project, created). Idempotent."""
    spec = {k: v for k, v in demo_content.DEMO_PROJECT.items() if k != "slug"}
    with transaction.atomic():
        project, created = Project.objects.get_or_create(
            slug=demo_content.DEMO_PROJECT["slug"], defaults=spec
        )
        if not project.items.exists():
            import_project_file(project=project, file=io.BytesIO(demo_zip()), filename="demo.zip")
        for user in demo_content.DEMO_USERS:
            add_member(
                project=project,
                username=user["username"],
                role=user["role"],
                password=user["password"],
            )
    return project, created
