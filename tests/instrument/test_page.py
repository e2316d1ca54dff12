"""The AI Auto-Instrument page: commands filled in for the org, its metered use, members only."""

import pytest
from django.urls import reverse

from accounts.services import api_key_create
from instrument.services import usage_record

from ..factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_the_page_fills_in_the_collector_url_a_key_hint_and_the_orgs_usage(member_client, org, other_org, settings):
    settings.LLMOBSERVE_PUBLIC_URL = "https://collector.example.com"
    created = api_key_create(org=org, name="ci")
    usage_record(org=org, claude_calls=1, input_tokens=1234, output_tokens=56)
    usage_record(org=other_org, claude_calls=1, input_tokens=999_999, output_tokens=1)

    response = member_client.get(reverse("auto_instrument", args=[org.slug]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "export LLMOBSERVE_URL=https://collector.example.com" in html
    assert f"export LLMOBSERVE_API_KEY={created.api_key.prefix}…" in html
    assert created.raw_key not in html
    assert "1,234 / 56" in html
    assert "999,999" not in html   # another org's usage never shows
    assert "not sent to any third party" in html


def test_with_a_claude_key_the_page_says_code_goes_to_anthropic(member_client, org, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-x"
    html = member_client.get(reverse("auto_instrument", args=[org.slug])).content.decode()
    assert "Anthropic's API" in html


def test_a_member_of_another_org_gets_a_404(client, org, other_org):
    outsider = MembershipFactory(org=other_org).user
    client.force_login(outsider)
    assert client.get(reverse("auto_instrument", args=[org.slug])).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, org):
    response = client.get(reverse("auto_instrument", args=[org.slug]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
