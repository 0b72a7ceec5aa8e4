"""python manage.py rerank PROJECT --out run.txt: the active version's scores as a TREC run."""

import sys
from itertools import groupby
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ranking import services

from ._project import project_or_error


class Command(BaseCommand):
    help = "Score every item with the active reranker; write `qid Q0 docid rank score tag` lines."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def handle(self, *args, project: str, out: Path | None, **options):
        target = project_or_error(project)
        version = services.active_version(project=target)
        if version is None:
            raise CommandError(
                f"'{target.slug}' has no active reranker version: run train_reranker first."
            )
        tag = f"pagewise-v{version.number}"
        handle = open(out, "w", encoding="utf-8") if out else sys.stdout
        try:
            lines = 0
            for qid, rows in groupby(
                services.rerank_scores(project=target, version=version), key=lambda r: r[0]
            ):
                ranked = sorted(rows, key=lambda r: (-r[2], r[1]))
                for rank, (_, docid, score) in enumerate(ranked, start=1):
                    handle.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
                    lines += 1
        finally:
            if out:
                handle.close()
        if out:
            self.stdout.write(f"Wrote {lines} lines to {out}.")
