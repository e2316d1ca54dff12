"""The signed-in dashboard: pages, htmx partials, filters, pagination, query bounds, settings, invitations."""

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, Invitation, Membership, User
from accounts.services import api_key_create, invitation_create
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc)


def ev(**fields):
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200,
            "timestamp": (NOW - timedelta(minutes=10)).isoformat(), "latency_ms": 300}
    base.update(fields)
    return base


@pytest.fixture
def history(org, ingest_key, post_events, prices):
    events = [
        ev(event_id="r1a", run_id="run-1", section_path="agent:researcher/tool:search", customer_id="acme",
           cached_input_tokens=400),
        ev(event_id="r1b", run_id="run-1", section_path="agent:researcher", customer_id="acme",
           timestamp=(NOW - timedelta(minutes=9)).isoformat(), reasoning_tokens=50),
        ev(event_id="r2a", run_id="run-2", section_path="agent:writer", status="error", http_status=500,
           customer_id="globex", timestamp=(NOW - timedelta(minutes=8)).isoformat()),
        ev(event_id="r3a", run_id="run-3", model="gpt-4o-mini", timestamp=(NOW - timedelta(minutes=7)).isoformat()),
        ev(event_id="r4a", run_id="run-4", model="unknown-model", timestamp=(NOW - timedelta(minutes=6)).isoformat()),
        ev(event_id="old", run_id="run-old", section_path="agent:writer", customer_id="acme",
           timestamp=(NOW - timedelta(days=3)).isoformat()),
    ]
    assert post_events(ingest_key, events).json()["accepted"] == len(events)
    return events


def url(name, org, *args):
    return reverse(name, args=[org.slug, *args])


# --- overview ------------------------------------------------------------------------------------

def test_overview_shows_total_breakdown_with_untracked_and_ctas(member_client, org, history):
    html = member_client.get(url("overview", org)).content.decode()
    assert 'data-testid="overview-total-cost"' in html
    # 3 gpt-4o calls at $0.0045 + one gpt-4o-mini call, cached tokens billed at half price on r1a
    total = re.search(r'data-testid="overview-total-cost"[^>]*>([^<]+)<', html).group(1)
    assert total.startswith("$0.01")
    assert html.count('data-testid="breakdown-row"') == 3  # researcher, writer, Untracked
    assert "Untracked" in html
    assert 'href="/docs/labeling/"' in html and f'href="/o/{org.slug}/auto-instrument/"' in html
    assert 'data-testid="cost-chart"' in html and 'id="cost-chart-data"' in html
    assert "1 unpriced call" in html
    assert 'hx-get="/o/%s/insights/panel/"' % org.slug in html
    assert "/static/js/plotly.min.js" in html and "https://" not in html.split("<body")[0]


def test_unpriced_row_is_never_shown_as_zero_dollars(member_client, org, history):
    html = member_client.get(url("overview", org)).content.decode()
    row = re.search(r"unknown-model</a></td><td class=\"num\">(.*?)</td>", html).group(1)
    assert "unpriced" in row and "$0" not in row


def test_overview_partial_for_htmx_and_window_switch(member_client, org, history):
    full = member_client.get(url("overview", org), {"window": "7d"})
    assert full["Vary"] and "HX-Request" in full["Vary"]
    partial = member_client.get(url("overview", org), {"window": "7d"}, headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body and body.lstrip().startswith('<div id="panels"')
    assert 'data-window="7d"' in body
    assert 'data-testid="window-7d"' in body and 'href="/o/%s/?window=30d"' % org.slug in body
    # the 3-day-old writer call counts in 7d but not in 24h
    calls_24h = member_client.get(url("overview", org), headers={"HX-Request": "true"}).content.decode()
    assert "agent:writer" in body or "writer" in body
    assert body.count('data-testid="breakdown-row"') == 3 and calls_24h.count('data-testid="breakdown-row"') == 3


def test_overview_custom_window_and_bad_window(member_client, org, history):
    day = (NOW - timedelta(days=3)).date().isoformat()
    html = member_client.get(url("overview", org), {"since": day, "until": day}).content.decode()
    assert 'data-window="custom"' in html and html.count('data-testid="breakdown-row"') == 1
    bad = member_client.get(url("overview", org), {"since": "2026-01-05", "until": "2026-01-01"})
    assert bad.status_code == 200 and "until must be after since" in bad.content.decode()


def test_overview_empty_org_points_to_onboarding(member_client, org):
    html = member_client.get(url("overview", org)).content.decode()
    assert "No events yet" in html and url("onboarding", org) in html


def test_overview_query_count_is_bounded(member_client, org, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(14):
        assert member_client.get(url("overview", org), {"window": "30d"}).status_code == 200


def test_docs_pages_render_markdown(client):
    html = client.get("/docs/labeling/").content.decode()
    assert "<h1" in html and "section(" in html
    assert client.get("/docs/no-such-doc/").status_code == 404
    assert client.get("/docs/..%2Fsettings/").status_code == 404


# --- runs ----------------------------------------------------------------------------------------

def test_runs_list_filters_and_links(member_client, org, history):
    html = member_client.get(url("runs", org)).content.decode()
    assert 'data-testid="runs-table"' in html
    assert html.count('data-testid="run-row"') == 4  # run-old is outside 24h
    assert url("run_detail", org, "run-1") in html
    filtered = member_client.get(url("runs", org), {"agent": "agent:researcher"}).content.decode()
    assert filtered.count('data-testid="run-row"') == 1 and "run-1" in filtered
    by_status = member_client.get(url("runs", org), {"status": "error"}).content.decode()
    assert by_status.count('data-testid="run-row"') == 1 and "run-2" in by_status
    by_model = member_client.get(url("runs", org), {"model": "gpt-4o-mini"}).content.decode()
    assert by_model.count('data-testid="run-row"') == 1 and "run-3" in by_model
    by_customer = member_client.get(url("runs", org), {"customer_id": "acme", "window": "7d"}).content.decode()
    assert by_customer.count('data-testid="run-row"') == 2
    panel = member_client.get(url("runs", org), {"status": "error"}, headers={"HX-Request": "true"})
    assert panel.content.decode().lstrip().startswith('<section class="card flush" id="runs-panel"')


def test_runs_load_more_with_keyset_cursor(member_client, org, ingest_key, post_events, prices,
                                           django_assert_max_num_queries):
    post_events(ingest_key, [ev(event_id=f"e{i}", run_id=f"run-{i:03d}",
                                timestamp=(NOW - timedelta(minutes=60 - i / 2)).isoformat()) for i in range(60)])
    html = member_client.get(url("runs", org)).content.decode()
    assert html.count('data-testid="run-row"') == 50 and 'data-testid="load-more"' in html
    next_url = re.search(r'hx-get="([^"]*cursor=[^"]+)"', html).group(1).replace("&amp;", "&")
    with django_assert_max_num_queries(10):
        more = member_client.get(next_url, headers={"HX-Request": "true"})
    body = more.content.decode()
    assert "<table" not in body and body.count('data-testid="run-row"') == 10 and "load-more" not in body
    seen = set(re.findall(r"run-\d{3}", html)) | set(re.findall(r"run-\d{3}", body))
    assert len(seen) == 60


def test_run_detail_tree_and_timeline(member_client, org, history):
    response = member_client.get(url("run_detail", org, "run-1"))
    html = response.content.decode()
    assert 'data-testid="section-tree"' in html and "<details open" in html
    assert 'data-path="agent:researcher"' in html and 'data-path="agent:researcher/tool:search"' in html
    assert html.count('data-testid="call-row"') == 2
    assert "400 cached" in html and "50 reasoning" in html
    assert "100.0%" in html  # the root node is the whole run


def test_run_detail_unpriced_call(member_client, org, history):
    html = member_client.get(url("run_detail", org, "run-4")).content.decode()
    assert "unpriced" in html and "Untracked" in html


def test_run_detail_query_count(member_client, org, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        assert member_client.get(url("run_detail", org, "run-1")).status_code == 200


# --- customers -----------------------------------------------------------------------------------

def test_customers_page_and_trend(member_client, org, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(9):
        html = member_client.get(url("customers", org), {"window": "24h"}).content.decode()
    assert html.count('data-testid="customer-row"') == 3  # acme, globex, (no customer)
    assert url("customer_detail", org, "acme") in html and "(no customer)" in html
    partial = member_client.get(url("customers", org), headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="customers-panel"')


def test_customer_drill_down(member_client, org, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(14):
        html = member_client.get(url("customer_detail", org, "acme"), {"window": "7d"}).content.decode()
    assert "researcher" in html and "writer" in html and "run-1" in html and "run-old" in html
    assert member_client.get(url("customer_detail", org, "nobody")).status_code == 404


# --- export --------------------------------------------------------------------------------------

def test_export_form_and_streamed_csv_json(member_client, org, history):
    assert 'data-testid="export-form"' in member_client.get(url("export", org)).content.decode()
    response = member_client.get(url("export", org), {"window": "7d", "format": "csv"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = b"".join(response.streaming_content).decode().splitlines()
    assert rows[0].startswith("event_id,run_id") and len(rows) == 1 + 6
    response = member_client.get(url("export", org), {"window": "24h", "format": "json", "agent": "agent:writer"})
    data = json.loads(b"".join(response.streaming_content))
    assert [e["event_id"] for e in data] == ["r2a"]


# --- settings: keys ------------------------------------------------------------------------------

def test_key_created_is_shown_once_then_revoked(member_client, org):
    response = member_client.post(url("api_key_create", org), {"name": "prod", "scope": "ingest"})
    assert response.status_code == 302
    page = member_client.get(url("settings_keys", org)).content.decode()
    raw = re.search(r'data-testid="new-api-key" id="new-key">(llmo_[^<]+)<', page).group(1)
    assert 'api_key="%s"' % raw in page  # the two-line snippet
    again = member_client.get(url("settings_keys", org)).content.decode()
    assert raw not in again and "prod" in again
    key = ApiKey.objects.for_org(org).get(name="prod")
    assert member_client.post(url("api_key_revoke", org, key.pk)).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "revoked" in member_client.get(url("settings_keys", org)).content.decode()


def test_key_last_used_is_shown(member_client, org, ingest_key, post_events, prices):
    post_events(ingest_key, [ev(event_id="x")])
    assert "ago" in member_client.get(url("settings_keys", org)).content.decode()


@pytest.fixture
def viewer_client(client, org):
    viewer = MembershipFactory(org=org, role=Membership.Role.VIEWER).user
    client.force_login(viewer)
    return client


def test_viewer_reads_but_cannot_manage(viewer_client, org):
    key = api_key_create(org=org, name="k").api_key
    for name in ("settings", "settings_keys", "settings_members", "overview", "runs", "export", "customers"):
        assert viewer_client.get(url(name, org)).status_code == 200, name
    assert viewer_client.post(url("api_key_create", org), {"name": "x", "scope": "read"}).status_code == 403
    assert viewer_client.post(url("api_key_revoke", org, key.pk)).status_code == 403
    assert viewer_client.post(url("member_invite", org), {"email": "a@b.co", "role": "member"}).status_code == 403
    assert viewer_client.post(url("settings", org), {"name": "Hacked", "slug": org.slug}).status_code == 403
    assert viewer_client.post(url("onboarding", org)).status_code == 403
    assert "Create key" not in viewer_client.get(url("settings_keys", org)).content.decode()


def test_org_name_and_slug_change(member_client, org):
    response = member_client.post(url("settings", org), {"name": "Renamed", "slug": "renamed-co"})
    assert response.status_code == 302 and response["Location"] == "/o/renamed-co/settings/"
    org.refresh_from_db()
    assert (org.name, org.slug) == ("Renamed", "renamed-co")
    taken = OrganizationFactory()
    response = member_client.post(url("settings", org), {"name": "Renamed", "slug": taken.slug})
    assert response.status_code == 200 and "taken" in response.content.decode()


# --- settings: members ---------------------------------------------------------------------------

def test_last_owner_cannot_leave_but_a_member_can(member_client, org, member, client):
    response = member_client.post(url("member_leave", org), follow=True)
    assert "last owner" in response.content.decode()
    assert Membership.objects.for_org(org).filter(user=member).exists()
    other = MembershipFactory(org=org, role=Membership.Role.MEMBER).user
    client.force_login(other)
    assert client.post(url("member_leave", org)).status_code == 302
    assert not Membership.objects.for_org(org).filter(user=other).exists()


def test_owner_changes_roles_and_removes(member_client, org):
    m = MembershipFactory(org=org, role=Membership.Role.MEMBER)
    member_client.post(url("member_role", org, m.pk), {"role": "admin"})
    m.refresh_from_db()
    assert m.role == "admin"
    member_client.post(url("member_remove", org, m.pk))
    assert not Membership.objects.unscoped().filter(pk=m.pk).exists()


def test_admin_cannot_touch_owners(client, org, member):
    admin = MembershipFactory(org=org, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    owner_membership = Membership.objects.for_org(org).get(user=member)
    assert client.post(url("member_role", org, owner_membership.pk), {"role": "viewer"}).status_code == 403
    assert client.post(url("member_remove", org, owner_membership.pk)).status_code == 403
    assert client.post(url("member_invite", org), {"email": "x@y.co", "role": "owner"}).status_code == 403


# --- invitations ---------------------------------------------------------------------------------

def _invite_link(body: str) -> str:
    return re.search(r"https?://\S+/invite/\S+/", body).group(0).split("testserver", 1)[1]


def test_invitation_for_a_new_user_signs_up_then_lands_in_the_org(member_client, org, client):
    member_client.post(url("member_invite", org), {"email": "New@Example.com", "role": "viewer"})
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
    link = _invite_link(mail.outbox[0].body)
    assert "pending" not in link
    member_client.logout()
    page = client.get(link)
    assert page.status_code == 200 and "Create your account" in page.content.decode()
    response = client.post(reverse("account_signup"), {"email": "new@example.com", "password1": "a-long-pass-123",
                                                       "password2": "a-long-pass-123"})
    assert response["Location"] == link
    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == url("overview", org)
    user = User.objects.get(email="new@example.com")
    assert Membership.objects.for_org(org).get(user=user).role == "viewer"
    assert Invitation.objects.for_org(org).get().accepted_at is not None
    assert client.post(link).status_code == 410  # used


def test_invitation_for_an_existing_user(org, member, client):
    existing = UserFactory(email="old@example.com")
    invitation = invitation_create(org=org, email="old@example.com", role="member", invited_by=member,
                                   base_url="http://testserver/")
    link = _invite_link(mail.outbox[0].body)
    assert "Sign in as" in client.get(link).content.decode()
    response = client.post(reverse("account_login"), {"login": "old@example.com", "password": "correct horse battery"})
    assert response["Location"] == link
    client.post(link)
    assert Membership.objects.for_org(org).filter(user=existing, role="member").exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at


def test_invitation_wrong_user_tampered_and_revoked(org, member, member_client):
    invitation_create(org=org, email="someone@example.com", role="member", invited_by=member,
                      base_url="http://testserver/")
    link = _invite_link(mail.outbox[0].body)
    stranger = UserFactory()
    client = Client()
    client.force_login(stranger)
    assert client.post(link).status_code == 400
    assert not Membership.objects.for_org(org).filter(user=stranger).exists()
    assert client.get(link[:-3] + "xx/").status_code == 404
    invitation = Invitation.objects.for_org(org).get()
    member_client.post(url("invitation_revoke", org, invitation.pk))
    assert not Invitation.objects.unscoped().filter(pk=invitation.pk).exists()
    assert client.get(link).status_code == 404


def test_members_page_lists_pending_invitations(member_client, org, member):
    member_client.post(url("member_invite", org), {"email": "p@example.com", "role": "member"})
    html = member_client.get(url("settings_members", org)).content.decode()
    assert "p@example.com" in html and 'data-testid="invitations-table"' in html
    again = member_client.post(url("member_invite", org), {"email": member.email, "role": "member"}, follow=True)
    assert "already a member" in again.content.decode()


# --- onboarding ----------------------------------------------------------------------------------

def test_onboarding_first_key_snippet_and_polling(member_client, org, post_events, prices):
    page = member_client.get(url("onboarding", org)).content.decode()
    assert 'data-testid="create-first-key"' in page and 'data-testid="waiting-for-events"' in page
    member_client.post(url("onboarding", org))
    page = member_client.get(url("onboarding", org)).content.decode()
    raw = re.search(r'data-testid="new-api-key" id="new-key">(llmo_[^<]+)<', page).group(1)
    assert f'api_key="{raw}"' in page and "import llmobserve" in page
    poll = member_client.get(url("onboarding", org), headers={"HX-Request": "true"})
    assert poll.status_code == 200 and 'data-testid="waiting-for-events"' in poll.content.decode()
    post_events(raw, [ev(event_id="first")])
    poll = member_client.get(url("onboarding", org), headers={"HX-Request": "true"})
    assert poll["HX-Redirect"] == url("overview", org)


# --- tenant isolation ----------------------------------------------------------------------------

def test_other_org_member_gets_404_everywhere(client, org, history, member):
    key = ApiKey.objects.for_org(org).first()
    stranger_org = OrganizationFactory()
    stranger = MembershipFactory(org=stranger_org).user
    client.force_login(stranger)
    invitation = invitation_create(org=org, email="z@example.com", role="member", invited_by=member,
                                   base_url="http://testserver/")
    membership = Membership.objects.for_org(org).first()
    gets = [url(n, org) for n in ("overview", "runs", "customers", "export", "settings", "settings_keys",
                                  "settings_members", "onboarding")]
    gets += [url("run_detail", org, "run-1"), url("customer_detail", org, "acme"),
             url("export", org) + "?format=csv&window=30d"]
    for path in gets:
        assert client.get(path).status_code == 404, path
        assert client.get(path, headers={"HX-Request": "true"}).status_code == 404, path
    posts = [url("api_key_create", org), url("api_key_revoke", org, key.pk), url("member_invite", org),
             url("member_role", org, membership.pk), url("member_remove", org, membership.pk),
             url("member_leave", org), url("invitation_revoke", org, invitation.pk), url("onboarding", org),
             url("settings", org)]
    for path in posts:
        assert client.post(path, {"role": "viewer", "name": "x", "scope": "read", "email": "q@q.co"}).status_code \
            == 404, path
    # the stranger's own org does not see the first org's run either
    assert client.get(reverse("run_detail", args=[stranger_org.slug, "run-1"])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_every_page_renders_for_a_member(member_client, org, history):
    for name in ("overview", "runs", "customers", "export", "settings", "settings_keys", "settings_members",
                 "onboarding"):
        response = member_client.get(url(name, org))
        assert response.status_code == 200, name
        assert b'href="/o/%s/insights/"' % org.slug.encode() in response.content


@pytest.mark.parametrize("name,limit", [("settings", 6), ("settings_keys", 7), ("settings_members", 8),
                                        ("export", 9), ("onboarding", 8), ("runs", 10)])
def test_other_pages_have_bounded_queries(member_client, org, history, member, name, limit,
                                          django_assert_max_num_queries):
    for i in range(5):  # more rows must not mean more queries
        MembershipFactory(org=org, role=Membership.Role.MEMBER)
        api_key_create(org=org, name=f"k{i}", created_by=member)
        invitation_create(org=org, email=f"inv{i}@example.com", role="member", invited_by=member,
                          base_url="http://testserver/")
    with django_assert_max_num_queries(limit):
        assert member_client.get(url(name, org)).status_code == 200


# 00:30 (the 24-hour window starts at a midnight), the last minutes of a month, a month's first instant, noon;
# all in the past (the member's session must not have expired there)
AWKWARD_INSTANTS = ["2026-12-01T00:30:00+00:00", "2026-11-30T23:40:00+00:00", "2026-11-01T00:00:00+00:00",
                    "2026-11-15T12:00:00+00:00"]


@pytest.mark.parametrize("instant", AWKWARD_INSTANTS)
def test_pages_on_the_24h_window_have_the_same_query_bound_at_any_hour(member_client, org, history, instant,
                                                                        django_assert_max_num_queries):
    with time_machine.travel(datetime.fromisoformat(instant), tick=False):
        for name, limit in (("export", 9), ("overview", 12)):
            with django_assert_max_num_queries(limit):
                assert member_client.get(url(name, org)).status_code == 200


@pytest.mark.parametrize("instant", AWKWARD_INSTANTS)
def test_a_24h_window_reads_the_hourly_rollups_in_one_part_and_a_30d_window_in_at_most_three(instant):
    from analytics.selectors import rollup_parts
    from analytics.windows import Window

    now = datetime.fromisoformat(instant)
    assert [(period, start, end) for _, period, start, end in rollup_parts(Window.named("24h", now=now))] == [
        ("hour", now.replace(minute=0) - timedelta(hours=24), now)]
    parts = rollup_parts(Window.named("30d", now=now))
    assert [period for _, period, _, _ in parts] in (["day"], ["day", "hour"], ["hour", "day", "hour"])
    assert parts[0][2] == now.replace(minute=0) - timedelta(days=30) and parts[-1][3] == now
    assert all(a[3] == b[2] for a, b in zip(parts, parts[1:]))  # contiguous: nothing read twice, nothing skipped


@pytest.mark.parametrize("window_name", ["24h", "7d"])
def test_overview_get_matches_the_single_selectors(org, history, window_name):
    """On PostgreSQL overview_get is one GROUPING SETS scan; it must agree with the per-breakdown selectors."""
    from analytics import selectors
    from analytics.windows import Window

    window = Window.named(window_name)
    for customer_id in (None, "acme"):
        data = selectors.overview_get(org=org, window=window, interval="hour", customer_id=customer_id)
        assert data.summary == selectors.cost_summary(org=org, window=window, customer_id=customer_id)
        assert data.agents == selectors.cost_breakdown(org=org, by="agent", window=window, customer_id=customer_id)
        assert data.models == selectors.model_breakdown(org=org, window=window, customer_id=customer_id)
        assert data.customers == selectors.cost_breakdown(org=org, by="customer", window=window, limit=8,
                                                          customer_id=customer_id)
        assert data.timeseries == selectors.cost_timeseries(org=org, window=window, interval="hour",
                                                            customer_id=customer_id)


def test_runs_custom_window(member_client, org, history):
    day = (NOW - timedelta(days=3)).date().isoformat()
    html = member_client.get(url("runs", org), {"since": day, "until": day}).content.decode()
    assert html.count('data-testid="run-row"') == 1 and "run-old" in html
    bad = member_client.get(url("runs", org), {"since": "2026-01-05", "until": "2026-01-01"}).content.decode()
    assert "until must be after since" in bad
