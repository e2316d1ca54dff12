"""Alert webhooks cannot reach the server's own network (SSRF), in the default configuration (issue 12, item 7).

The URL is checked when saved and again at delivery; delivery connects to the address that was
checked (DNS rebinding), follows no redirect and never stores the response body. Every request in
these tests goes to 127.0.0.0/8: a receiver on 127.0.0.1, or nothing.
"""

from __future__ import annotations

import ssl
import subprocess

import pytest

from accounts.models import Organization
from analytics.insights import alerts
from analytics.insights.services import alert_settings_update, insights_run
from analytics.models import AlertDelivery, Insight

from .insights_helpers import NOW, raise_detector_errors  # noqa: F401  (autouse fixture)
from .test_alerts import Hook, hook, spike_history  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

REFUSED = [
    "http://127.0.0.1:{port}/hook",
    "https://127.0.0.1:{port}/hook",
    "https://localhost:{port}/hook",
    "https://localhost.:{port}/hook",
    "https://0.0.0.0:{port}/hook",
    "https://2130706433:{port}/hook",  # 127.0.0.1 as one number
    "https://[::1]:{port}/hook",
    "https://[::]:{port}/hook",
    "https://[::ffff:127.0.0.1]:{port}/hook",
    "https://[64:ff9b::7f00:1]:{port}/hook",  # NAT64 of 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
    "https://169.254.169.254/latest/meta-data",
    "https://10.1.2.3/hook",
    "https://192.168.0.10/hook",
    "https://100.64.0.1/hook",
    "https://224.0.0.1/hook",
    "https://240.0.0.1/hook",
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://user@hooks.test/hook",  # credentials, even to a public host
    "https://user:secret@hooks.test/hook",
    "https://hooks.test@127.0.0.1:{port}/hook",
    "http://hooks.test/hook",  # plain http without the operator's opt-in
    "https://internal.test/hook",  # a name that resolves to a private address
    "https://mixed.test/hook",  # one public and one private address
    "https://nowhere.test/hook",  # does not resolve
    "https://0x7f000001/hook",  # 127.0.0.1 in hex, resolved by the system
    "https://a..b/hook",  # not a valid host name
    "ftp://hooks.test/hook",
]


@pytest.fixture
def names(fake_dns):
    fake_dns["hooks.test"] = ["93.184.215.14"]  # public; nothing connects to it in these tests
    fake_dns["internal.test"] = ["10.0.0.5"]
    fake_dns["mixed.test"] = ["93.184.215.14", "127.0.0.1"]
    return fake_dns


@pytest.mark.parametrize("template", REFUSED)
def test_settings_page_refuses_internal_webhook_urls_by_default(member_client, org, names, template):
    url = template.format(port=8000)
    response = member_client.post(f"/o/{org.slug}/settings/alerts/", {"alert_email": "on", "alert_webhook_url": url})
    assert response.status_code == 200 and b"errorlist" in response.content, url
    org.refresh_from_db()
    assert org.alert_webhook_url == ""
    with pytest.raises(ValueError):
        alert_settings_update(org=org, alert_webhook_url=url)


def test_a_public_https_url_is_saved(member_client, org, names):
    response = member_client.post(f"/o/{org.slug}/settings/alerts/",
                                  {"alert_email": "on", "alert_webhook_url": "https://hooks.test/T0/B0"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.alert_webhook_url == "https://hooks.test/T0/B0"


def _store(org, url):
    """A URL stored before the guard existed (or while an opt-in was on): delivery checks it again."""
    Organization.objects.filter(pk=org.pk).update(alert_webhook_url=url, alert_email=False)
    org.refresh_from_db()


def _deliver(org):
    with pytest.raises(alerts.AlertDeliveryError):
        insights_run(org=org, now=NOW)
        [delivery] = AlertDelivery.objects.for_org(org)
        alerts.alert_deliver(delivery_id=delivery.pk)
    return AlertDelivery.objects.for_org(org).get()


def test_delivery_refuses_a_stored_internal_url_in_the_default_configuration(org, spike_history, hook, settings):
    _store(org, hook.url)
    delivery = _deliver(org)
    assert delivery.status == "failed" and delivery.last_error == "webhook URL must start with https://"
    settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP = True  # http allowed, private addresses still not
    for url in (hook.url, hook.url.replace("127.0.0.1", "localhost"), hook.url.replace("127.0.0.1", "0.0.0.0")):
        _store(org, url)
        assert "private address" in alerts.alert_test_send(org=org)["webhook"]
    _store(org, hook.url.replace("http://", "http://user@"))
    assert "user name or password" in alerts.alert_test_send(org=org)["webhook"]
    assert hook.requests == []


def test_delivery_error_never_echoes_the_response_body(org, spike_history, hook, settings):
    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP = True
    hook.status, hook.body = 500, b"root:x:0:0:internal secret"
    _store(org, hook.url)
    delivery = _deliver(org)
    assert delivery.last_error == "webhook answered HTTP 500"
    assert alerts.alert_test_send(org=org)["webhook"] == "webhook answered HTTP 500"


def test_redirects_are_not_followed(org, spike_history, hook, settings):
    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP = True
    hook.status, hook.location = 307, f"http://127.0.0.1:{hook.port}/elsewhere"
    _store(org, hook.url)
    delivery = _deliver(org)
    assert delivery.last_error == "webhook answered HTTP 307"
    assert [r["path"] for r in hook.requests] == ["/services/T000/B000/XXX"]


def test_delivery_connects_to_the_address_it_checked(org, spike_history, hook, settings, fake_dns):
    """DNS rebinding: a second lookup would answer 127.0.0.2 (nothing listens there); only one lookup is made."""
    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP = True
    answers = iter([["127.0.0.1"]] + [["127.0.0.2"]] * 10)
    fake_dns["rebind.test"] = lambda: next(answers)
    _store(org, f"http://rebind.test:{hook.port}/hook?x=1")
    insights_run(org=org, now=NOW)
    delivery = AlertDelivery.objects.for_org(org).get()
    assert alerts.alert_deliver(delivery_id=delivery.pk).status == "sent"
    assert fake_dns.lookups == ["rebind.test"]
    assert hook.requests[0]["host"] == f"rebind.test:{hook.port}" and hook.requests[0]["path"] == "/hook?x=1"


def test_slack_text_escapes_labels(org, spike_history, hook, settings):
    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP = True
    crafted = "<!channel> & <http://evil.test|click>"
    Organization.objects.filter(pk=org.pk).update(name=crafted)
    _store(org, hook.url)
    insights_run(org=org, now=NOW)
    Insight.objects.for_org(org).update(title=f"Spend spike in {crafted}", section=crafted, customer_id=crafted)
    alerts.alert_deliver(delivery_id=AlertDelivery.objects.for_org(org).get().pk)
    assert alerts.alert_test_send(org=org)["webhook"] is None  # its text names the org
    escaped = "&lt;!channel&gt; &amp; &lt;http://evil.test|click&gt;"
    for request in hook.requests:
        text = request["body"]["text"]
        assert "<" not in text and ">" not in text and escaped in text
    assert hook.requests[0]["body"]["text"].count(escaped) == 3  # title, section, customer


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for hooks.test, and a CA bundle that trusts it."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hooks.test",
                    "-addext", "subjectAltName=DNS:hooks.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_https_delivery_sends_the_host_name_as_sni_and_checks_the_certificate(org, spike_history, settings,
                                                                               fake_dns, certificate, monkeypatch):
    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = True  # https: no http opt-in
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Hook(tls=context)
    monkeypatch.setattr("analytics.insights.webhooks.certifi.where", lambda: str(cert))  # trust our test CA
    try:
        fake_dns["hooks.test"] = ["127.0.0.1"]
        fake_dns["other.test"] = ["127.0.0.1"]
        _store(org, f"https://hooks.test:{server.port}/hook")
        assert alerts.alert_test_send(org=org)["webhook"] is None
        assert server.server_names == ["hooks.test"]
        assert server.requests[0]["host"] == f"hooks.test:{server.port}"

        _store(org, f"https://other.test:{server.port}/hook")  # the certificate is not for this name
        assert "TLS" in alerts.alert_test_send(org=org)["webhook"]
        assert len(server.requests) == 1
    finally:
        server.close()
