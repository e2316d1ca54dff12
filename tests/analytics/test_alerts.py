"""Alerts: email to owners/admins and a webhook on a real local HTTP server, exactly once, failures recorded."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.exceptions import Retry

from accounts.models import Membership, Organization
from analytics import tasks
from analytics.insights import alerts
from analytics.insights.services import alert_settings_update, insights_run
from analytics.models import AlertDelivery, Insight
from tests.factories import MembershipFactory, UserFactory

from .insights_helpers import raise_detector_errors, NOW, at, daily, ev, post_all

pytestmark = pytest.mark.django_db
__all__ = ["raise_detector_errors"]  # autouse fixture


class Hook:
    """A local webhook receiver: records every POST; answers `status` after `delay` seconds.

    With `tls` (an ssl.SSLContext) it speaks https and records the TLS server name (SNI) it was asked for.
    """

    def __init__(self, tls=None):
        self.requests: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self.body = None  # the response body; default "ok" or "invalid_token"
        self.location = None  # a Location header to send (redirect tests)
        self.server_names: list[str | None] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append({"path": self.path, "body": json.loads(body or b"null"),
                                      "content_type": self.headers.get("Content-Type"), "host": self.headers.get("Host")})
                time.sleep(hook.delay)
                try:
                    self.send_response(hook.status)
                    self.send_header("Content-Type", "text/plain")
                    if hook.location:
                        self.send_header("Location", hook.location)
                    self.end_headers()
                    self.wfile.write(hook.body or (b"ok" if hook.status < 300 else b"invalid_token"))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/services/T000/B000/XXX"
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = Hook()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _local_webhooks_allowed(settings):
    """These tests post to a receiver on 127.0.0.1 over http: they opt in as a self-hoster would."""
    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = True
    settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP = True


@pytest.fixture
def team(org, member):
    """Owner (`member`), an admin and a plain member: alerts go to the first two."""
    admin = MembershipFactory(org=org, role=Membership.Role.ADMIN, user=UserFactory(email="admin@example.com")).user
    MembershipFactory(org=org, role=Membership.Role.MEMBER, user=UserFactory(email="dev@example.com"))
    return sorted([member.email, admin.email])


@pytest.fixture
def spike_history(org, ingest_key, post_events, prices):
    events = daily("agent:researcher", 2) + [ev(section="agent:researcher", at=at(0, 2), customer="acme")
                                             for _ in range(150)]
    post_all(post_events, ingest_key, events)


@pytest.fixture
def run(org, django_capture_on_commit_callbacks):
    """insights_run with its after-commit alert tasks executed (eagerly), like the beat task does."""
    def _run(now=NOW):
        with django_capture_on_commit_callbacks(execute=True):
            return insights_run(org=org, now=now)
    return _run


def test_one_email_per_insight_to_owners_and_admins_only(org, team, spike_history, run, mailoutbox):
    [insight] = run()
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == team
    assert "Spend spike in agent:researcher" in mail.subject and org.name in mail.subject
    assert "Money at stake: $0.675" in mail.body and "Customer: acme" in mail.body
    assert f"/o/{org.slug}/insights/" in mail.body
    delivery = AlertDelivery.objects.for_org(org).get()
    assert (delivery.channel, delivery.status, delivery.attempts) == ("email", "sent", 1)
    insight.refresh_from_db()
    assert insight.alerted_at is not None

    run(NOW + timedelta(hours=1))  # the same insight, refreshed: no second email
    assert len(mailoutbox) == 1 and AlertDelivery.objects.for_org(org).count() == 1


def test_webhook_gets_a_slack_compatible_post_exactly_once(org, team, spike_history, run, hook, mailoutbox):
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=hook.url)
    [insight] = run()
    assert len(hook.requests) == 1 and mailoutbox == []
    posted = hook.requests[0]
    assert posted["path"] == "/services/T000/B000/XXX" and posted["content_type"] == "application/json"
    assert posted["body"]["text"].startswith("Spend spike in agent:researcher")
    [item] = posted["body"]["llmobserve"]["insights"]
    assert item["id"] == insight.id and item["kind"] == "section_spike" and item["amount_usd"] == "0.675"
    delivery = AlertDelivery.objects.for_org(org).get()
    assert delivery.status == "sent" and delivery.sent_at is not None

    tasks.alert_send.delay(delivery.id)  # a duplicate task message: nothing is sent twice
    run(NOW + timedelta(hours=2))
    assert len(hook.requests) == 1


def test_webhook_failure_is_recorded_and_a_retry_delivers(org, spike_history, run, hook):
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=hook.url)
    hook.status = 500
    [insight] = run()  # the detector run itself is not disturbed
    assert Insight.objects.for_org(org).count() == 1
    delivery = AlertDelivery.objects.for_org(org).get()
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.last_error == "webhook answered HTTP 500"  # the status only, never the response body

    hook.status = 200
    assert tasks.alert_send.delay(delivery.id).get() == "sent"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    assert len(hook.requests) == 2


def test_webhook_timeout_is_a_recorded_failure(org, spike_history, run, hook, settings):
    settings.LLMOBSERVE_WEBHOOK_TIMEOUT = 0.3
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=hook.url)
    hook.delay = 1.5
    started = time.monotonic()
    run()
    assert time.monotonic() - started < 1.4  # gave up after the timeout, no in-process retries
    delivery = AlertDelivery.objects.for_org(org).get()
    assert delivery.status == "failed" and delivery.last_error == "webhook timed out after 0.3 s"


def test_unreachable_webhook_is_a_recorded_failure(org, spike_history, run):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=f"http://127.0.0.1:{port}/hook")
    run()
    delivery = AlertDelivery.objects.for_org(org).get()
    assert delivery.status == "failed" and delivery.last_error.startswith("webhook request failed: ConnectionError")


def test_a_worker_retries_a_failed_send_with_backoff_and_a_bound(org, spike_history, hook):
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=hook.url)
    insights_run(org=org, now=NOW)  # no commit: the delivery stays pending
    delivery = AlertDelivery.objects.for_org(org).get()
    hook.status = 503
    task = tasks.alert_send
    task.push_request(is_eager=False, retries=2, id="t-1", called_directly=False)
    calls = []
    original = task.retry

    def fake_retry(*args, **kwargs):
        calls.append(kwargs)
        return Retry("retrying", when=kwargs.get("countdown"))

    task.retry = fake_retry
    try:
        with pytest.raises(Retry):
            task.run(delivery.id)
    finally:
        task.retry = original
        task.pop_request()
    assert calls[0]["countdown"] == 120 and str(calls[0]["exc"]).startswith("webhook answered HTTP 503")
    assert task.max_retries == alerts.MAX_ATTEMPTS - 1 and task.acks_late
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 1


def test_no_more_attempts_after_the_bound(org, spike_history, hook):
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=hook.url)
    insights_run(org=org, now=NOW)
    delivery = AlertDelivery.objects.for_org(org).get()
    AlertDelivery.objects.unscoped().filter(pk=delivery.pk).update(status="failed", attempts=alerts.MAX_ATTEMPTS)
    assert alerts.alert_deliver(delivery_id=delivery.id).status == "failed"
    assert hook.requests == []


def test_hourly_job_requeues_old_failures(org, spike_history, run, hook, django_capture_on_commit_callbacks):
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=hook.url)
    hook.status = 500
    run()
    delivery = AlertDelivery.objects.for_org(org).get()
    assert delivery.status == "failed"
    hook.status = 200
    assert alerts.alerts_requeue() == []  # too recent: Celery's own retries are still running
    AlertDelivery.objects.unscoped().filter(pk=delivery.pk).update(attempted_at=delivery.attempted_at - timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.alerts_requeue() == [delivery.id]
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 2 and len(hook.requests) == 2


def test_private_webhook_targets_are_refused_at_delivery_once_not_allowed(org, spike_history, run, hook, settings):
    alert_settings_update(org=org, alert_email=False, alert_webhook_url=hook.url)
    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = False  # the operator withdrew the opt-in after the URL was saved
    run()
    delivery = AlertDelivery.objects.for_org(org).get()
    assert delivery.status == "failed" and "private address" in delivery.last_error
    assert hook.requests == []


def test_channels_turned_off_after_queuing_are_skipped(org, team, spike_history, mailoutbox, hook,
                                                      django_capture_on_commit_callbacks):
    alert_settings_update(org=org, alert_webhook_url=hook.url)
    insights_run(org=org, now=NOW)  # queued, not yet sent
    alert_settings_update(org=org, alert_email=False, alert_webhook_url="")
    for delivery in AlertDelivery.objects.for_org(org):
        tasks.alert_send.delay(delivery.id)
    assert set(AlertDelivery.objects.for_org(org).values_list("status", flat=True)) == {"skipped"}
    assert mailoutbox == [] and hook.requests == []


def test_daily_digest_sends_one_message_per_channel(org, team, ingest_key, post_events, prices, run, hook,
                                                    mailoutbox, django_capture_on_commit_callbacks):
    alert_settings_update(org=org, alert_digest=True, alert_webhook_url=hook.url)
    events = (daily("agent:researcher", 2) + [ev(section="agent:researcher", at=at(0, 2)) for _ in range(150)]
              + daily("agent:writer", 10, days=range(1, 8)) + daily("agent:writer", 10, days=[0], input_tokens=4000))
    post_all(post_events, ingest_key, events)
    found = run()
    assert len(found) == 2 and mailoutbox == [] and hook.requests == []  # held for the digest

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.alerts_digest.delay().get() == 2  # one email, one webhook
    assert len(mailoutbox) == 1 and len(hook.requests) == 1
    assert "daily digest, 2 new insights" in mailoutbox[0].subject
    assert "Spend spike" in mailoutbox[0].body and "Token bloat" in mailoutbox[0].body
    assert len(hook.requests[0]["body"]["llmobserve"]["insights"]) == 2

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.alerts_digest.delay().get() == 0  # nothing new: no second digest
    assert len(mailoutbox) == 1 and len(hook.requests) == 1


def test_spending_cap_alerts_are_not_held_for_the_digest(org, team, ingest_key, post_events, prices, run,
                                                         mailoutbox):
    post_all(post_events, ingest_key, daily("agent:a", 30, days=[0]))
    alert_settings_update(org=org, alert_digest=True, spend_cap_usd="0.10", now=NOW)
    [cap] = run()
    assert cap.kind == "spend_cap" and len(mailoutbox) == 1
    assert "Spending cap reached" in mailoutbox[0].subject


def test_insights_run_all_runs_every_org_and_alerts_each_once(org, other_org, team, spike_history, mailoutbox,
                                                              django_capture_on_commit_callbacks, monkeypatch):
    from analytics.insights import services

    real = services.insights_run
    monkeypatch.setattr(services, "insights_run", lambda *, org, now=None: real(org=org, now=NOW))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.insights_run_all.delay().get() == 2
    with django_capture_on_commit_callbacks(execute=True):
        tasks.insights_run_all.delay()
    assert Insight.objects.for_org(org).count() == 1 and not Insight.objects.for_org(other_org).exists()
    assert len(mailoutbox) == 1


def test_settings_page_test_button_reaches_both_channels(member_client, org, team, hook, mailoutbox):
    alert_settings_update(org=org, alert_webhook_url=hook.url)
    response = member_client.post(f"/o/{org.slug}/settings/alerts/test/", follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Email: test alert sent." in page and "Webhook: test alert sent." in page
    assert len(mailoutbox) == 1 and sorted(mailoutbox[0].to) == team
    assert hook.requests[0]["body"]["llmobserve"] == {"org": org.slug, "test": True}
    assert not AlertDelivery.objects.for_org(org).exists()

    hook.status = 404
    page = member_client.post(f"/o/{org.slug}/settings/alerts/test/", follow=True).content.decode()
    assert "Webhook: test alert failed — webhook answered HTTP 404" in page


def test_test_button_is_for_managers_only(client, org):
    client.force_login(MembershipFactory(org=org, role=Membership.Role.MEMBER).user)
    assert client.post(f"/o/{org.slug}/settings/alerts/test/").status_code == 403


def test_a_label_with_cr_lf_still_gets_its_email(org, team, spike_history, mailoutbox):
    """A newline in a label or org name once raised BadHeaderError on every attempt: the alert never went out."""
    Organization.objects.filter(pk=org.pk).update(name="Acme\r\nBcc: victim@example.com")
    insights_run(org=org, now=NOW)  # no commit: the delivery stays pending
    Insight.objects.for_org(org).update(title="Spend spike in agent:x\r\nBcc: evil@example.com\x07\u2028end")
    delivery = AlertDelivery.objects.for_org(org).get(channel="email")
    assert alerts.alert_deliver(delivery_id=delivery.pk).status == "sent"
    [message] = mailoutbox
    assert message.subject == "[LLMObserve] Acme Bcc: victim@example.com: Spend spike in agent:x Bcc: evil@example.com end"
    assert sorted(message.to) == team and not message.bcc
    message.message()  # the headers serialise
    assert alerts.alert_test_send(org=org) == {"email": None}


def test_one_amount_reads_the_same_on_every_surface(org, team, spike_history, run, hook, mailoutbox, api, read_key,
                                                     member_client):
    """Issue 13 §2: the spike's $0.675 at stake is "$0.675" in the stored title, the e-mail, the Slack text, the
    insights page and the run_insights line (one display rule), and exactly "0.675" in the API."""
    from io import StringIO

    from django.core.management import call_command

    alert_settings_update(org=org, alert_webhook_url=hook.url)
    [insight] = run()
    assert insight.amount_pico == 675_000_000_000
    shown = "$0.675"
    assert f"(+{shown})" in insight.title  # titles are stored: generated with the display rule
    assert f"Money at stake: {shown} (exact: $0.675)" in mailoutbox[0].body
    [posted] = hook.requests
    assert f"Money at stake: {shown}" in posted["body"]["text"]
    page = member_client.get(f"/o/{org.slug}/insights/").content.decode()
    assert f'title="$0.675">{shown}</span> at stake' in page and f"(+{shown})" in page
    out = StringIO()
    call_command("run_insights", "--org", org.slug, "--now", NOW.isoformat(), stdout=out)
    assert f"\tsection_spike\t{shown}\t" in out.getvalue()
    [item] = api(read_key).get("/v1/insights").json()["results"]
    assert item["amount_usd"] == "0.675" and f"(+{shown})" in item["title"]
    for surface in (insight.title, mailoutbox[0].body, posted["body"]["text"], page, out.getvalue()):
        assert "$0.68" not in surface.replace("$0.684", "")  # the old cent-rounded titles and e-mails
