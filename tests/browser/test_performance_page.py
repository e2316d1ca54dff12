"""The Performance page in a real browser on the demo history: plotly lines drawn (no inline script, CSP),
the window switch via htmx, a failing section linking to its runs, and the run page's status mix."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from tests.browser.test_dashboard import browser, demo, page, sign_in  # noqa: F401  (fixtures)


def test_performance_page_draws_charts_switches_window_and_links_to_runs(page, demo):  # noqa: F811
    sign_in(page, demo)
    page.get_by_role("link", name="Performance").click()
    page.wait_for_load_state("networkidle")
    assert urlparse(page.url).path == "/o/demo-co/performance/"
    for chart in ("latency-chart", "error-chart", "model-chart"):
        expect(page.get_by_test_id(chart).locator("svg.main-svg").first).to_be_visible()
    expect(page.get_by_test_id("perf-model-row").first).to_be_visible()

    page.evaluate("window.__marker = 1")  # survives an htmx swap, not a reload
    page.get_by_test_id("window-7d").click()
    expect(page.get_by_test_id("performance-panels")).to_have_attribute("data-window", "7d")
    expect(page.get_by_test_id("latency-chart").locator("svg.main-svg").first).to_be_visible()
    assert page.evaluate("window.__marker") == 1 and "window=7d" in page.url

    # the demo's triage section fails in the last 24 h: it leads the failing sections
    failing = page.get_by_test_id("failing-section-row").filter(has_text="agent:triage/step:classify")
    expect(failing).to_contain_text("rate_limited")
    failing.get_by_role("link").click()
    page.wait_for_load_state("networkidle")
    query = parse_qs(urlparse(page.url).query)
    assert urlparse(page.url).path == "/o/demo-co/runs/"
    assert query["section"] == ["agent:triage/step:classify"] and query["status"] == ["rate_limited"]
    run_link = page.locator("a[href*='/runs/demo-triage-']").first
    expect(run_link).to_be_visible()
    run_link.click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("run-status-mix")).to_contain_text("rate_limited")
    page.watch.assert_clean(slug="demo-co")
