"""Who may do what on an org's pages: declared on each view by `org_member_required`, never checked inline.

Owners and admins manage keys, members, invitations, the org's settings, caps and alerts, and billing;
members and viewers get 403 there (and nothing changes); members may dismiss insights, viewers only
read; someone outside the org gets the same 404 as for a missing org.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import ApiKey, Invitation, Membership, Organization
from accounts.services import api_key_create, invitation_create
from analytics.models import Insight
from billing.models import PromoCode
from ingestion.models import ModelPrice, PriceDiscount
from ingestion.price_services import discount_save, price_override_save
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

MANAGERS = [Membership.Role.OWNER, Membership.Role.ADMIN]
NOT_MANAGERS = [Membership.Role.MEMBER, Membership.Role.VIEWER]


@dataclass
class Action:
    name: str
    done: Callable[[dict], bool] | None  # did the action take effect? (None: nothing to observe here)
    args: Callable[[dict], list] = lambda ctx: []
    data: dict = field(default_factory=dict)
    method: str = "post"


def _org(ctx) -> Organization:
    return Organization.objects.get(pk=ctx["org"].pk)


MANAGE_ACTIONS = {a.name + ("" if a.method == "post" else "_get"): a for a in [
    Action("api_key_create", data={"name": "new", "scope": "read"},
           done=lambda ctx: ApiKey.objects.for_org(ctx["org"]).filter(name="new").exists()),
    Action("api_key_revoke", args=lambda ctx: [ctx["key"].pk],
           done=lambda ctx: ApiKey.objects.for_org(ctx["org"]).get(pk=ctx["key"].pk).revoked_at is not None),
    Action("member_invite", data={"email": "new@example.com", "role": "member"},
           done=lambda ctx: Invitation.objects.for_org(ctx["org"]).filter(email="new@example.com").exists()),
    Action("member_role", args=lambda ctx: [ctx["target"].pk], data={"role": "viewer"},
           done=lambda ctx: Membership.objects.for_org(ctx["org"]).get(pk=ctx["target"].pk).role == "viewer"),
    Action("member_remove", args=lambda ctx: [ctx["target"].pk],
           done=lambda ctx: not Membership.objects.for_org(ctx["org"]).filter(pk=ctx["target"].pk).exists()),
    Action("invitation_revoke", args=lambda ctx: [ctx["invitation"].pk],
           done=lambda ctx: not Invitation.objects.for_org(ctx["org"]).filter(pk=ctx["invitation"].pk).exists()),
    Action("settings", data={"name": "Renamed", "slug": "acme"}, done=lambda ctx: _org(ctx).name == "Renamed"),
    Action("onboarding", done=lambda ctx: ApiKey.objects.for_org(ctx["org"]).filter(name="first key").exists()),
    Action("alert_settings", method="get", done=None),
    Action("alert_settings", data={"spend_cap_usd": "5", "alert_email": "on"},
           done=lambda ctx: _org(ctx).spend_cap_pico == 5 * 10**12),
    Action("alert_test", done=lambda ctx: any("test alert" in m.subject for m in mail.outbox)),
    # Without Stripe, checkout and portal answer 303 back to the billing page (tests/billing has the rest).
    Action("billing_checkout", done=None),
    Action("billing_portal", done=None),
    Action("billing_redeem", data={"code": "WELCOME"},
           done=lambda ctx: _org(ctx).subscription_status == Organization.Subscription.COMPED),
    Action("price_override_create", data={"provider": "openai", "match_kind": "exact", "model_match": "gpt-x",
                                          "input_mtok": "1", "output_mtok": "2"},
           done=lambda ctx: ModelPrice.objects.for_org(ctx["org"]).filter(model_match="gpt-x").exists()),
    Action("price_override_update", args=lambda ctx: [ctx["price"].pk],
           data={"provider": "openai", "match_kind": "exact", "model_match": "gpt-4o", "input_mtok": "3",
                 "output_mtok": "4"},
           done=lambda ctx: ModelPrice.objects.for_org(ctx["org"]).get(pk=ctx["price"].pk).input_mtok == 3),
    Action("price_override_delete", args=lambda ctx: [ctx["price"].pk],
           done=lambda ctx: not ModelPrice.objects.for_org(ctx["org"]).exists()),
    Action("price_discount_create", data={"provider": "anthropic", "match_kind": "prefix", "percent": "15"},
           done=lambda ctx: PriceDiscount.objects.for_org(ctx["org"]).filter(provider="anthropic").exists()),
    Action("price_discount_update", args=lambda ctx: [ctx["discount"].pk],
           data={"provider": "openai", "match_kind": "prefix", "percent": "7.5"},
           done=lambda ctx: PriceDiscount.objects.for_org(ctx["org"]).get().percent == Decimal("7.5")),
    Action("price_discount_delete", args=lambda ctx: [ctx["discount"].pk],
           done=lambda ctx: not PriceDiscount.objects.for_org(ctx["org"]).exists()),
    Action("prices_reprice", data={"since": "2026-01-01", "until": "2026-02-01"}, done=None),
]}


@pytest.fixture
def ctx(org):
    org.slug = "acme"
    org.save(update_fields=["slug"])
    owner = MembershipFactory(org=org, role=Membership.Role.OWNER).user
    return {
        "org": org,
        "key": api_key_create(org=org, name="existing").api_key,
        "target": MembershipFactory(org=org, role=Membership.Role.MEMBER),
        "invitation": invitation_create(org=org, email="pending@example.com", role="member", invited_by=owner,
                                        base_url="http://testserver/"),
        "promo": PromoCode.objects.create(code="WELCOME", months=1),
        "insight": Insight.objects.create(org=org, kind=Insight.Kind.SECTION_SPIKE, title="spike",
                                          dedupe_key="d", period="2026-01-01"),
        "price": price_override_save(org=org, provider="openai", match_kind="exact", model_match="gpt-4o",
                                     input_mtok="2", output_mtok="8"),
        "discount": discount_save(org=org, provider="openai", percent="10"),
    }


def _request(client, action: Action, ctx):
    mail.outbox.clear()
    url = reverse(action.name, args=[ctx["org"].slug, *action.args(ctx)])
    return getattr(client, action.method)(url, action.data)


def _login(client, ctx, role):
    client.force_login(MembershipFactory(org=ctx["org"], role=role).user)
    return client


@pytest.mark.parametrize("role", NOT_MANAGERS)
@pytest.mark.parametrize("action", MANAGE_ACTIONS)
def test_members_and_viewers_get_403_on_every_manage_action(client, ctx, role, action):
    action = MANAGE_ACTIONS[action]
    response = _request(_login(client, ctx, role), action, ctx)
    assert response.status_code == 403
    assert "Only owners and admins can do this" in response.content.decode()
    if action.done:
        assert not action.done(ctx)


@pytest.mark.parametrize("role", MANAGERS)
@pytest.mark.parametrize("action", MANAGE_ACTIONS)
def test_owners_and_admins_can_do_every_manage_action(client, ctx, role, action):
    action = MANAGE_ACTIONS[action]
    response = _request(_login(client, ctx, role), action, ctx)
    assert response.status_code == (200 if action.method == "get" else 303 if "billing" in action.name else 302)
    if action.done:
        assert action.done(ctx)


@pytest.mark.parametrize("action", MANAGE_ACTIONS)
def test_outsiders_get_404_on_every_manage_action(client, ctx, other_org, action):
    action = MANAGE_ACTIONS[action]
    client.force_login(MembershipFactory(org=other_org, role=Membership.Role.OWNER).user)
    response = _request(client, action, ctx)
    assert response.status_code == 404
    if action.done:
        assert not action.done(ctx)


def test_a_signed_in_user_of_no_org_gets_404_and_anonymous_is_sent_to_login(client, ctx):
    url = reverse("settings_keys", args=[ctx["org"].slug])
    assert client.get(url).status_code == 302
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    assert client.get(reverse("settings_keys", args=["no-such-org"])).status_code == 404


@pytest.mark.parametrize("role", list(Membership.Role))
@pytest.mark.parametrize("name", ["settings", "settings_keys", "settings_members", "onboarding", "billing",
                                  "insights", "overview", "settings_prices"])
def test_every_member_reads_the_pages_they_may_not_change(client, ctx, role, name):
    assert _login(client, ctx, role).get(reverse(name, args=[ctx["org"].slug])).status_code == 200


@pytest.mark.parametrize("role, allowed", [("viewer", False), ("member", True), ("admin", True), ("owner", True)])
def test_viewers_cannot_dismiss_insights_the_others_can(client, ctx, role, allowed):
    insight = ctx["insight"]
    response = _login(client, ctx, role).post(reverse("insight_dismiss", args=[ctx["org"].slug, insight.pk]))
    assert response.status_code == (302 if allowed else 403)
    if not allowed:
        assert "you are a viewer" in response.content.decode()
    insight.refresh_from_db()
    assert (insight.status == Insight.Status.DISMISSED) is allowed


def test_only_an_owner_grants_the_owner_role(client, ctx):
    """Data-dependent (the role asked for, the target's role), so the service checks it, not the decorator."""
    target = ctx["target"]
    response = _login(client, ctx, "admin").post(reverse("member_role", args=[ctx["org"].slug, target.pk]),
                                                 {"role": "owner"})
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.role == "member"
