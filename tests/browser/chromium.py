"""What every browser test shares: Debian's Chromium, launched headless and offline-safe."""

from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# Without the background-networking flags Chromium keeps dialling out of this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def overlapping_chart_texts(page, selector: str = "svg.chart") -> list[tuple[str, str]]:
    """Pairs of texts in the same chart whose boxes, as Chromium lays them out, overlap (by more
    than half a pixel, so text that merely touches is not counted)."""
    pairs = []
    for chart in page.locator(selector).all():
        boxes = [(text.text_content(), text.bounding_box()) for text in chart.locator("text").all()]
        boxes = [(label, box) for label, box in boxes if box and box["width"] and box["height"]]
        for i, (a_label, a) in enumerate(boxes):
            for b_label, b in boxes[i + 1 :]:
                width = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
                height = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
                if width > 0.5 and height > 0.5:
                    pairs.append((a_label, b_label))
    return pairs
