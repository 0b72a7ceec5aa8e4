from ranking.ml.bench import run_benchmark


def test_benchmark_reports_epoch_time_throughput_and_peak_memory():
    figures = run_benchmark(queries=24, items_per_query=10, epochs=1, threads=1)
    assert figures["epoch_seconds"] > 0
    assert figures["pages_per_second"] > 0
    assert figures["peak_rss_mb"] > 50
    assert figures["queries"] == 24 and figures["threads"] == 1
