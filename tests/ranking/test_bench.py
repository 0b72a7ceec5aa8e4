from ranking.ml.bench import PRODUCT_PATH, run_benchmark


def test_benchmark_reports_epoch_time_throughput_and_peak_memory():
    figures = run_benchmark(queries=24, items_per_query=10, epochs=1, threads=1, repeats=2)
    assert figures["epoch_seconds"] > 0
    assert figures["pages_per_second"] > 0
    # Every inference path is timed in the same run, so the product's speed-up is a ratio.
    assert set(figures["inference"]) >= {PRODUCT_PATH, "padded_batch64", "padded_batch256"}
    product = figures["inference"][PRODUCT_PATH]
    assert product["pages_per_second_median"] == figures["pages_per_second"]
    assert figures["speedup_vs_padded_batch256"] > 0
    assert figures["peak_rss_mb"] > 50
    assert figures["queries"] == 24 and figures["threads"] == 1


def test_vlm_benchmark_reports_items_and_pages_per_second(tiny_vlm_path, tmp_path):
    import json

    from django.core.management import call_command

    out = tmp_path / "bench_vlm.json"
    call_command(
        "bench_vlm", "--model", str(tiny_vlm_path), "--items", "6", "--pages", "2",
        "--page-items", "3", "--batch-size", "3", "--threads", "1", "--json", str(out),
    )  # fmt: skip
    figures = json.loads(out.read_text())
    assert figures["pointwise_items_per_second"] > 0
    assert figures["listwise_pages_per_second"] > 0
    assert figures["items"] == 6 and figures["pages"] == 2 and figures["device"] == "cpu"
