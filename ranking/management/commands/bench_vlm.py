"""python manage.py bench_vlm: the vision-language scorer's items/s (pointwise), pages/s (listwise)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ranking.ml.bench_vlm import run_vlm_benchmark
from ranking.ml.vlm import VlmError


class Command(BaseCommand):
    help = (
        "Benchmark the vision-language scorer: a tiny random model built here unless --model "
        "names a local model directory (e.g. SmolVLM or Qwen2-VL-2B downloaded by you)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", type=Path, default=None, help="local model directory")
        parser.add_argument("--items", type=int, default=64, help="items scored pointwise")
        parser.add_argument("--pages", type=int, default=8, help="pages scored listwise")
        parser.add_argument("--page-items", type=int, default=10, help="items per page")
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--json", dest="json_path", type=Path)

    def handle(self, *args, model, items, pages, page_items, batch_size, device, threads,
               json_path, **options):  # fmt: skip
        for name, value in (("items", items), ("pages", pages), ("page-items", page_items),
                            ("batch-size", batch_size)):  # fmt: skip
            if value < 1:
                raise CommandError(f"--{name} must be at least 1")
        try:
            figures = run_vlm_benchmark(
                model_path=model, items=items, pages=pages, page_items=page_items,
                batch_size=batch_size, device=device, threads=threads,
            )  # fmt: skip
        except VlmError as exc:
            raise CommandError(str(exc)) from None
        listwise = (
            f"{figures['listwise_pages_per_second']:.2f} pages/s listwise "
            f"({figures['listwise_items_per_second']:.1f} items/s, {page_items} items a page)"
            if figures["listwise_pages_per_second"]
            else f"listwise refused: {figures['listwise_refusal']}"
        )
        self.stdout.write(
            f"{figures['model']} on {figures['device']} ({figures['dtype']}, batch "
            f"{batch_size}, {figures['threads']} threads): "
            f"{figures['pointwise_items_per_second']:.1f} items/s pointwise, {listwise}; "
            f"load {figures['load_seconds']:.1f} s, peak RSS {figures['peak_rss_mb']:.0f} MB"
        )
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2))
