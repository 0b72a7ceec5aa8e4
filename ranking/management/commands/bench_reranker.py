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
        parser.add_argument(
            "--repeats", type=int, default=3, help="rounds of timing every inference path"
        )
        parser.add_argument("--json", dest="json_path", type=Path)

    def handle(self, *args, queries, items, epochs, threads, repeats, json_path, **options):
        figures = run_benchmark(
            queries=queries, items_per_query=items, epochs=epochs, threads=threads, repeats=repeats
        )
        self.stdout.write(
            f"{queries} queries x {items} items: {figures['epoch_seconds']:.2f} s per epoch "
            f"({figures['train_pages_per_second']:.1f} pages/s in training), "
            f"peak RSS {figures['peak_rss_mb']:.0f} MB"
        )
        self.stdout.write(
            f"inference, {figures['threads']} threads, {repeats} rounds (median / best pages/s, "
            "median CPU s):"
        )
        for name, path in figures["inference"].items():
            self.stdout.write(
                f"  {name:<24} {path['pages_per_second_median']:8.1f} / "
                f"{path['pages_per_second_best']:8.1f}  {path['cpu_seconds_median']:.2f} CPU s"
            )
        self.stdout.write(
            f"product path ({figures['inference_batch_size']} pages a batch): "
            f"{figures['speedup_vs_padded_batch256']:.2f}x the padded batches of 256, "
            f"{figures['speedup_vs_padded_batch64']:.2f}x those of 64 (medians, same run)"
        )
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2))
