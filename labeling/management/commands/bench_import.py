"""python manage.py bench_import --items 100000: import a generated file, print items/s and memory."""

import json
import os
import resource
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connection
from django.test.utils import override_settings

from labeling.benchmarks import generated_records, write_jsonl
from labeling.imports import import_project_file
from labeling.models import Item, Project, Query


class Command(BaseCommand):
    help = "Benchmark the all-or-nothing import on a generated JSONL file."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=100_000)
        parser.add_argument(
            "--json", dest="json_path", type=Path, help="write the figures to this JSON file"
        )
        parser.add_argument(
            "--keep", action="store_true", help="keep the benchmark project afterwards"
        )

    def handle(self, *args, items: int, json_path: Path | None, keep: bool, **options):
        slug = f"bench-import-{int(time.time())}"
        project = Project.objects.create(
            slug=slug, name="Import benchmark", modalities=["text", "image"]
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.jsonl"
            lines = write_jsonl(path, generated_records(items=items))
            size_mb = path.stat().st_size / 1e6
            server_started = _server_cpu_seconds()
            started, cpu_started = time.perf_counter(), time.process_time()
            # Measure the import alone: no embedding work is queued for the throw-away project.
            with override_settings(PAGEWISE_EMBED_AFTER_IMPORT=False):
                result = import_project_file(project=project, file=path)
            seconds = time.perf_counter() - started
            # This process's CPU time: on a machine loaded by other work it says what an idle
            # one would take (SQLite works in-process; PostgreSQL's server time is not in it).
            cpu_seconds = time.process_time() - cpu_started
            server_ended = _server_cpu_seconds()
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures = {
            "items": result.items_created,
            "queries": result.queries_created,
            "lines": lines,
            "file_mb": round(size_mb, 1),
            "seconds": round(seconds, 2),
            "items_per_second": round(result.items_created / seconds, 1),
            "cpu_seconds": round(cpu_seconds, 2),
            # The PostgreSQL backend's CPU time, when the server runs on this machine.
            "server_cpu_seconds": (
                round(server_ended - server_started, 2)
                if server_started is not None and server_ended is not None
                else None
            ),
            "items_per_cpu_second": round(result.items_created / cpu_seconds, 1),
            "peak_rss_mb": round(peak_rss_mb, 1),
            "database": connection.vendor,
        }
        if not keep:
            # The ORM's cascade collects every item first (minutes at 100,000 on PostgreSQL):
            # the benchmark's project has only items, queries and its import run, so delete the
            # items and queries in two statements.
            with connection.cursor() as cursor:
                for model in (Item, Query):
                    cursor.execute(
                        f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} "
                        "WHERE project_id = %s",
                        [project.pk],
                    )
            project.delete()
        self.stdout.write(
            f"Imported {figures['items']} items ({figures['file_mb']} MB) on {figures['database']} in "
            f"{figures['seconds']} s: {figures['items_per_second']} items/s "
            f"({figures['cpu_seconds']} s of this process's CPU: "
            f"{figures['items_per_cpu_second']} items per CPU second"
            + (
                f"; the PostgreSQL backend's CPU: {figures['server_cpu_seconds']} s"
                if figures["server_cpu_seconds"] is not None
                else ""
            )
            + "), "
            f"peak RSS {figures['peak_rss_mb']} MB"
        )
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2))


def _server_cpu_seconds() -> float | None:
    """CPU seconds (user + system) of this connection's PostgreSQL backend, read from /proc when
    the server runs on this machine and we may read it; None otherwise (or on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)
