"""The demo project, loaded from data: `demo_data/demo.jsonl` (queries and items in the ordinary
import format) and `demo_data/project.json` (the project's settings, its users, and which sample
photograph each image path is). The photographs ship inside scikit-image, scikit-learn and
matplotlib, so the demo needs no download; they are put in a zip beside the JSONL and the whole
goes through the ordinary import."""

from __future__ import annotations

import io
import json
import zipfile
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from django.db import transaction
from PIL import Image

from .imports import import_project_file
from .models import Project
from .services import add_member

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"
DEMO_JSONL = DEMO_DIR / "demo.jsonl"


@cache
def _spec() -> dict[str, Any]:
    return json.loads((DEMO_DIR / "project.json").read_text(encoding="utf-8"))


def demo_project() -> dict[str, Any]:
    """The demo project's settings, named after Project's fields (money as Decimal)."""
    project = dict(_spec()["project"])
    for field in ("grade_cost", "compare_cost", "budget"):
        project[field] = Decimal(project[field])
    return project


def demo_users() -> list[dict[str, str]]:
    return [dict(user) for user in _spec()["users"]]


def demo_records() -> list[dict[str, Any]]:
    """The demo's queries and items as import records (JSONL lines), each query before its items."""
    with DEMO_JSONL.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _sample_photograph(package: str, name: str) -> Image.Image:
    """One sample image bundled with an installed package; each package is imported lazily."""
    if package == "skimage":
        import numpy as np
        from skimage import data

        array = getattr(data, name)()
        if name == "stereo_motorcycle":
            array = array[0]  # (left view, right view, disparity): one photograph is enough
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        return Image.fromarray(array)
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name))
    if package == "matplotlib":
        from matplotlib import cbook

        with Image.open(cbook.get_sample_data(name, asfileobj=False)) as image:
            image.load()
            return image.copy()
    raise ValueError(f"unknown sample-image package {package!r}")


def _encode(image: Image.Image, path: str, max_side: int) -> bytes:
    image = image.copy()
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if path.endswith(".png"):
        image.save(buffer, format="PNG", optimize=True)
    else:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()


def demo_images() -> dict[str, bytes]:
    """Encoded bytes of every image the demo records refer to, keyed by their relative path."""
    spec = _spec()
    return {
        path: _encode(_sample_photograph(**source), path, spec["max_image_side"])
        for path, source in sorted(spec["images"].items())
    }


def demo_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(DEMO_JSONL, "demo.jsonl")
        for path, data in demo_images().items():
            archive.writestr(path, data)
    return buffer.getvalue()


def load_demo() -> tuple[Project, bool]:
    """Create the demo project, its data and users; return (project, created). Idempotent."""
    spec = demo_project()
    with transaction.atomic():
        project, created = Project.objects.get_or_create(slug=spec.pop("slug"), defaults=spec)
        if not project.items.exists():
            import_project_file(project=project, file=io.BytesIO(demo_zip()), filename="demo.zip")
        for user in demo_users():
            add_member(
                project=project,
                username=user["username"],
                role=user["role"],
                password=user["password"],
            )
    return project, created
