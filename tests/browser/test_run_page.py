"""Issue 13 §6 in a real browser: a run's calls table fits its card at 1400 px (the cost column visible inside
the card), and the overview's Untracked row leads to the runs with untracked calls."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from ingestion.models import RunSummary, TraceEvent
from tests.browser.test_dashboard import browser, demo, sign_in  # noqa: F401  (fixtures)


def _boxes_inside(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    table = page.get_by_test_id("run-timeline")
    card = page.locator("section.card", has=table)
    card_box = card.bounding_box()
    wrap = card.locator(".table-wrap")
    overflow = wrap.evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0, f"the calls table is {overflow}px wider than its card at {width}px"
    header = table.locator("thead th").last
    assert header.inner_text().strip().lower() == "cost"
    for cell in [header, *table.locator("tbody tr[data-testid=call-row] td:last-child").all()[:20]]:
        box = cell.bounding_box()
        assert box and box["width"] > 0
        assert card_box["x"] <= box["x"] and box["x"] + box["width"] <= card_box["x"] + card_box["width"] + 0.5, (
            f"cost cell {box} outside its card {card_box} at {width}px")
        expect(cell).to_be_visible()


def test_run_page_cost_column_fits_the_card_at_1400px(browser, demo):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, demo)
        # the demo's widest run: most calls, long section paths and model names
        run = RunSummary.objects.unscoped().order_by("-calls", "run_id").first()
        page.goto(f"{demo}/o/demo-co/runs/{run.run_id}/")
        expect(page.get_by_test_id("call-row").first).to_be_visible()
        for width in (1400, 1280):
            _boxes_inside(page, width)
    finally:
        context.close()


def test_untracked_row_links_to_the_runs_with_untracked_calls(browser, demo):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, demo)
        page.goto(f"{demo}/o/demo-co/?window=30d")
        link = page.get_by_test_id("agent-breakdown").get_by_test_id("untracked-runs-link")
        expect(link).to_have_text("Untracked")
        link.click()
        page.wait_for_load_state("networkidle")
        query = parse_qs(urlparse(page.url).query)
        assert urlparse(page.url).path == "/o/demo-co/runs/" and query["untracked"] == ["1"]
        assert query["window"] == ["30d"]
        expect(page.locator("#id_untracked")).to_be_checked()
        shown = {a.inner_text().strip() for a in page.locator("tr[data-testid=run-row] a.mono").all()}
        untracked = set(TraceEvent.objects.unscoped().filter(section_path="").values_list("run_id", flat=True))
        assert shown and shown <= untracked
        tracked_only = set(RunSummary.objects.unscoped().values_list("run_id", flat=True)) - untracked
        assert tracked_only and not shown & tracked_only
    finally:
        context.close()
