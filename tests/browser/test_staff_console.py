"""The staff console in a real browser: a staff user opens it over the demo data and sees its charts drawn."""

from __future__ import annotations

import pytest

from accounts.models import User

# Importing test_dashboard also skips this module, for the same reason, where Chromium is missing.
from .test_dashboard import DEMO_EMAIL, browser, demo, page, shot, sign_in  # noqa: F401 - fixtures

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_console_draws_its_charts_and_switches_window(page, demo):  # noqa: F811
    User.objects.filter(email=DEMO_EMAIL).update(is_staff=True)
    sign_in(page, demo)
    page.goto(f"{demo}/staff/?days=30")
    expect(page.locator("h1")).to_have_text("Staff console")
    for chart in ("staff-events-chart", "staff-cost-chart", "staff-signups-chart", "staff-keys-chart"):
        expect(page.locator(f"[data-testid={chart}] svg.main-svg").first).to_be_visible()
    assert page.get_by_test_id("staff-events").inner_text() != "0"
    expect(page.get_by_test_id("staff-top-cost").get_by_test_id("staff-org-row")).to_have_count(1)  # the demo org
    expect(page.get_by_test_id("staff-active-orgs")).to_have_text("1")
    page.get_by_test_id("staff-window-7d").click()
    page.wait_for_url(lambda url: url.endswith("/staff/?days=7"))
    expect(page.get_by_test_id("staff-window-7d")).to_have_class("active")
    expect(page.locator("[data-testid=staff-cost-chart] svg.main-svg").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    shot(page, "staff-console")
    page.watch.assert_clean()


def test_staff_console_is_a_404_for_the_demo_user_without_staff(page, demo):  # noqa: F811
    sign_in(page, demo)
    response = page.goto(f"{demo}/staff/")
    assert response.status == 404
