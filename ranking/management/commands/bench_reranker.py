"""python manage.py bench_reranker: training seconds per epoch, inference pages/s, peak memory."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from ranking.ml.bench import run_benchmark


class Command(BaseCommand):
    help = "Benchmark the reranker on generated pages (1,000 queries x 40 items, precomputed embeddings)."

    def add_arguments(self, parser):
        parser.add_argument("--queries", type=int, default=1000)
        parser.add_argument("--items", type=int, default=40, help="items per query")
        parser.add_argument("--epochs", type=int, default=2)
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--json", dest="json_path", type=Path)

    def handle(self, *args, queries, items, epochs, threads, json_path, **options):
        figures = run_benchmark(
            queries=queries, items_per_query=items, epochs=epochs, threads=threads
        )
        self.stdout.write(
            f"{queries} queries x {items} items: {figures['epoch_seconds']:.2f} s per epoch, "
            f"{figures['pages_per_second']:.1f} pages/s inference ({figures['pages_per_second_batch64']:.1f} in batches of 64; {figures['train_pages_per_second']:.1f} pages/s in training), peak RSS {figures['peak_rss_mb']:.0f} MB"
        )
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2))
