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


def log_in(
    browser, live_server, username: str, password: str, *, height=900, accept_downloads=False
):
    """A new context signed in through the login form: (context, page, page errors seen)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": height}, accept_downloads=accept_downloads
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    return context, page, errors
