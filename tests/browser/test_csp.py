"""The Content-Security-Policy in a real browser (Chromium): the app, Django admin and Swagger UI work under
it with no violation, and user data placed in the members page cannot run script (issue 12, item 6).

Every page records `securitypolicyviolation` events (an init script, which the page's CSP does not
govern) and console errors; any of either fails the test.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Membership, User
from tests.browser.test_dashboard import Watch, browser, demo, sign_in  # noqa: F401  (fixtures)
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sample || ""));
});
window.__xss = 0;
"""
PAYLOAD = "');window.__xss=1;alert(1);//\"></form></script><script>window.__xss=2;alert(2)</script><img src=x onerror=alert(3)>"


class CspWatch(Watch):
    """Watch + the page's CSP violations, and no alert/prompt dialog ever (confirm dialogs are recorded)."""

    def __init__(self, page, origin: str):
        super().__init__(page, origin)
        self.page = page
        self.confirms: list[str] = []
        self.unexpected_dialogs: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("dialog", self._dialog)
        self.confirm_answer = False

    def _dialog(self, dialog) -> None:
        if dialog.type == "confirm":
            self.confirms.append(dialog.message)
            dialog.accept() if self.confirm_answer else dialog.dismiss()
        else:
            self.unexpected_dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

    def assert_no_violation(self) -> None:
        assert self.page.evaluate("window.__cspViolations") == []
        assert not self.unexpected_dialogs, self.unexpected_dialogs
        assert self.page.evaluate("window.__xss") == 0


@pytest.fixture
def page(browser, live_server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.watch = CspWatch(page, live_server.url)
    yield page
    context.close()


def test_every_response_carries_a_csp_without_inline_script(page, demo):
    response = page.goto(f"{demo}/accounts/login/")
    policy = response.headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert script_src.split()[1:] == ["'self'"]
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    page.watch.assert_no_violation()


def test_overview_chart_and_htmx_window_switch_under_csp(page, demo):
    sign_in(page, demo)
    page.goto(f"{demo}/o/demo-co/?window=30d")
    expect(page.locator("[data-testid=cost-chart] svg.main-svg").first).to_be_visible()
    page.evaluate("window.__marker = 'kept'")
    page.get_by_test_id("window-7d").click()
    expect(page.locator("#panels")).to_have_attribute("data-window", "7d")
    assert page.evaluate("window.__marker") == "kept"  # swapped by htmx, not reloaded
    expect(page.locator("[data-testid=cost-chart] svg.main-svg").first).to_be_visible()
    page.locator("[data-testid=cost-chart] .nsewdrag").first.hover()  # plotly's hover styles work too
    page.goto(f"{demo}/o/demo-co/customers/")
    page.goto(f"{demo}/o/demo-co/runs/?window=7d")
    page.wait_for_load_state("networkidle")
    page.watch.assert_no_violation()
    page.watch.assert_clean(slug="demo-co")


def test_crafted_org_name_and_email_never_run_on_the_members_page(page, live_server):
    org = OrganizationFactory(name=f"Acme {PAYLOAD}")
    owner = MembershipFactory(org=org, role=Membership.Role.OWNER).user
    MembershipFactory(org=org, role=Membership.Role.OWNER)  # a second owner, so the first may leave
    victim = MembershipFactory(org=org, role=Membership.Role.MEMBER, user=UserFactory(email=f"v{PAYLOAD}@evil.dev")).user
    sign_in(page, live_server.url, owner.email, "correct horse battery")
    page.goto(f"{live_server.url}/o/{org.slug}/settings/members/")
    expect(page.get_by_test_id("member-row")).to_have_count(3)

    row = page.get_by_test_id("member-row").filter(has_text="@evil.dev")
    row.get_by_role("button", name="Remove").click()  # dismissed: nothing happens
    page.get_by_test_id("leave-org").click()  # dismissed too
    page.wait_for_timeout(300)
    assert page.watch.confirms == [f"Remove {victim.email}?", f"Leave {org.name}?"]
    assert Membership.objects.for_org(org).count() == 3

    page.watch.confirm_answer = True  # an accepted confirmation submits the form
    row.get_by_role("button", name="Remove").click()
    expect(page.get_by_test_id("member-row")).to_have_count(2)
    assert not Membership.objects.for_org(org).filter(user=victim).exists()
    # the role <select> still submits on change (was an inline onchange handler)
    other = page.get_by_test_id("member-row").filter(has_not_text="you")
    other.locator("select[name=role]").select_option("admin")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("member-row").filter(has_not_text="you").locator("select[name=role]")).to_have_value("admin")
    page.watch.assert_no_violation()
    assert not page.watch.errors, page.watch.errors


def test_django_admin_and_swagger_ui_work_under_csp(page, live_server):
    User.objects.create_superuser(email="root@example.com", password="correct horse battery")
    page.goto(f"{live_server.url}/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("LLMObserve API")
    expect(page.locator(".opblock").first).to_be_visible()
    page.watch.assert_no_violation()

    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=login], input[name=username]", "root@example.com")
    page.fill("input[name=password]", "correct horse battery")
    page.locator("form [type=submit]").last.click()
    page.wait_for_url(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/admin/ingestion/modelprice/add/")
    expect(page.locator("#modelprice_form")).to_be_visible()
    page.goto(f"{live_server.url}/admin/accounts/user/")
    page.wait_for_load_state("networkidle")
    page.watch.assert_no_violation()
