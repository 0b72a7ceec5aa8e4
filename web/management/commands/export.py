"""python manage.py export PROJECT --format FORMAT [--out FILE]: the streaming exports of
web/exports.py (judgments-jsonl, judgments-csv, qrels, pairs, run, weights) on the command
line. Without --out, text goes to standard output; with --out a directory, the file is named
like the web download (slug, format, UTC timestamp)."""

import shutil
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import PagewiseError
from labeling.models import Project
from web.exports import FORMATS, prepare_export


class Command(BaseCommand):
    help = "Stream an export of a project: judgments, qrels, pairs, a run file or model weights."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("--format", required=True, choices=list(FORMATS), dest="format_name")
        parser.add_argument(
            "--out", type=Path, help="file (or existing directory) to write; default stdout"
        )

    def handle(self, *args, project: str, format_name: str, out: Path | None, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project '{project}'.")
        try:
            prepared = prepare_export(project=target, name=format_name)
        except PagewiseError as exc:
            raise CommandError(exc.message) from None
        if out is not None and out.is_dir():
            out = out / prepared.filename
        if prepared.path is not None:
            if out is None:
                with prepared.path.open("rb") as source:
                    shutil.copyfileobj(source, sys.stdout.buffer)
                return
            shutil.copyfile(prepared.path, out)
        elif out is None:
            for line in prepared.lines:
                self.stdout.write(line, ending="")
            return
        else:
            with out.open("w", encoding="utf-8", newline="") as sink:
                for line in prepared.lines:
                    sink.write(line)
        self.stderr.write(f"Wrote {out}")
