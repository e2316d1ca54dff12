"""Headers and markup every page must carry (issue 12, items 6 and 10): a CSP without inline script, no inline
event handlers or inline scripts in any page, and no caching of signed-in pages."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
PAYLOAD = "x');alert(1);//\"</script><script>alert(2)</script>"

ORG_PAGES = ("overview", "runs", "customers", "export", "insights", "settings", "settings_keys",
             "settings_members", "alert_settings", "billing", "auto_instrument", "onboarding")


@pytest.fixture
def crafted_client(client):
    org = OrganizationFactory(name=f"Org {PAYLOAD}")
    owner = MembershipFactory(org=org, role=Membership.Role.OWNER).user
    MembershipFactory(org=org, role=Membership.Role.MEMBER, user=UserFactory(email=f"m{PAYLOAD}@evil.test"))
    client.force_login(owner)
    return client, org


def _script_src(policy: str) -> list[str]:
    return next(d.split()[1:] for d in policy.split(";") if d.strip().split()[0] == "script-src")


def test_pages_have_a_strict_csp_and_no_inline_script(crafted_client):
    client, org = crafted_client
    for name in ORG_PAGES:
        response = client.get(reverse(name, args=[org.slug]))
        assert response.status_code == 200, name
        assert _script_src(response["Content-Security-Policy"]) == ["'self'"], name
        html = response.content.decode()
        assert not INLINE_HANDLER.search(html), (name, INLINE_HANDLER.search(html).group(0))
        for attrs, body in SCRIPT_TAG.findall(html):
            assert "src=" in attrs or 'type="application/json"' in attrs, (name, attrs, body[:80])
        assert "<script>alert(2)" not in html, name  # the crafted name and email stay escaped
    for path in ("/accounts/login/", "/accounts/signup/", "/v1/docs", "/docs/labeling/"):
        response = client.get(path) if path.startswith(("/v1", "/docs")) else client.__class__().get(path)
        assert _script_src(response["Content-Security-Policy"]) == ["'self'"], path


def test_members_page_confirmations_carry_the_text_as_data(crafted_client):
    client, org = crafted_client
    html = client.get(reverse("settings_members", args=[org.slug])).content.decode()
    assert 'data-confirm="Remove mx&#x27;);alert(1);//&quot;&lt;/script&gt;' in html
    assert 'data-confirm="Leave Org x&#x27;);alert(1);//&quot;&lt;/script&gt;' in html
    assert "data-autosubmit" in html


def test_signed_in_pages_are_never_cached(member_client, org):
    response = member_client.post(reverse("api_key_create", args=[org.slug]), {"name": "prod", "scope": "ingest"})
    page = member_client.get(response["Location"])
    assert b'data-testid="new-api-key"' in page.content  # the page that shows the new key once
    cache_control = {part.strip() for part in page["Cache-Control"].split(",")}
    assert {"no-store", "no-cache", "private"} <= cache_control
    for name in ("overview", "settings_members", "export"):
        assert "no-store" in member_client.get(reverse(name, args=[org.slug]))["Cache-Control"], name


def test_api_responses_keep_their_own_caching(client, api, read_key):
    response = api(read_key).get("/v1/stats/summary")
    assert response.status_code == 200 and "no-store" not in response.get("Cache-Control", "")
