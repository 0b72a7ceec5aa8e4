"""python manage.py bench_import_hostile --mib 500: the peak memory of importing the hostile zips.

Two zips of a few hundred KB each: one unpacks to MIB MiB of blank lines, the other to one line
of MIB MiB of spaces. Each is imported in a fresh process (as a worker would run it); the command
prints that process's peak RSS, the time taken and the outcome (both are refused: the line limit
and the line-count limit stop them while memory stays bounded).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from django.core.management.base import BaseCommand

from labeling.errors import ImportFailed
from labeling.imports import import_project_file
from labeling.models import Project

CHUNK = 1 << 20


def write_hostile_zip(path: Path, *, kind: str, mib: int) -> None:
    """Stream MIB MiB of blank lines, or of one line of spaces, into a deflated zip member."""
    piece = (b"\n" if kind == "blank-lines" else b" ") * CHUNK
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("data.jsonl", "w", force_zip64=True) as member:
            for _ in range(mib):
                member.write(piece)


class Command(BaseCommand):
    help = "Peak RSS of a process importing a zip of blank lines and a zip of one huge line."

    def add_arguments(self, parser):
        parser.add_argument("--mib", type=int, default=500, help="unpacked size of each file")
        parser.add_argument("--json", dest="json_path", type=Path)
        parser.add_argument(
            "--child", type=Path, help="(internal) import this file and print the figures"
        )
        parser.add_argument("--project", default="bench-hostile")

    def handle(
        self, *args, mib: int, json_path: Path | None, child: Path | None, project: str, **options
    ):
        if child is not None:
            self._import_once(child, project)
            return
        target, _ = Project.objects.get_or_create(
            slug=project, defaults={"name": "Hostile import benchmark", "modalities": ["text"]}
        )
        figures = {}
        try:
            with tempfile.TemporaryDirectory() as folder:
                for kind in ("blank-lines", "one-long-line"):
                    path = Path(folder) / f"{kind}.zip"
                    write_hostile_zip(path, kind=kind, mib=mib)
                    out = subprocess.run(
                        [sys.executable, "manage.py", "bench_import_hostile", "--child", str(path),
                         "--project", project],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    result["zip_bytes"] = path.stat().st_size
                    result["unpacked_mib"] = mib
                    figures[kind] = result
                    self.stdout.write(
                        f"{kind}: {mib} MiB unpacked ({result['zip_bytes']} bytes zipped): "
                        f"peak RSS {result['peak_rss_mb']:.0f} MB, {result['seconds']:.1f} s, "
                        f"{result['outcome']}"
                    )
        finally:
            target.delete()
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2))

    def _import_once(self, path: Path, slug: str) -> None:
        started = time.perf_counter()
        try:
            result = import_project_file(project=Project.objects.get(slug=slug), file=path)
            outcome = f"imported {result.items_created} items"
        except ImportFailed as exc:
            first = exc.problems[0] if exc.problems else None
            outcome = f"refused: {first}" if first else f"refused: {exc.message}"
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        seconds = time.perf_counter() - started
        sys.stdout.write(
            json.dumps(
                {"peak_rss_mb": peak_kb * 1024 / 1e6, "seconds": seconds, "outcome": outcome}
            )
            + "\n"
        )
