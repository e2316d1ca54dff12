"""Alert webhooks without server-side request forgery.

A webhook URL is checked when it is saved and again at every delivery: https only (plain http
when the operator sets LLMOBSERVE_WEBHOOK_ALLOW_HTTP), no credentials in the URL, and every
address its host resolves to must be public: loopback, private, link-local, CGNAT, multicast,
reserved and unspecified addresses are refused, also when they hide inside an IPv6 address
(IPv4-mapped, NAT64 64:ff9b::/96, 6to4, Teredo). LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE lifts the
address rule for self-hosters whose chat server sits on their own network.

The POST connects to the address that was validated (the host is resolved once per delivery) and
sends the original Host header and TLS server name, so a DNS answer that changes between the
check and the connection (rebinding) cannot redirect it. Redirects are never followed, and the
response body is never read into errors: an error names the status code only.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

USER_AGENT = "LLMObserve-Alerts/1"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are the IPv4 target
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): an operator's own network


class WebhookError(Exception):
    """A webhook URL that may not be used, or a POST that did not succeed; the text is safe to show."""


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str  # as written in the URL (Host header, TLS server name)
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]  # the validated IPs, in the order to try


def address_is_public(value: str) -> bool:
    """True for a globally routable unicast address, judged also by the IPv4 address an IPv6 one carries."""
    ip = ipaddress.ip_address(value.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return address_is_public(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return address_is_public(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip in _NAT64_LOCAL:
            return False
        inner = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None and not address_is_public(str(inner)):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback
                                 or ip.is_link_local or ip.is_private)


def _resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise WebhookError(f"webhook host {host} does not resolve") from None
    addresses: list[str] = []
    for info in infos:
        address = info[4][0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookError(f"webhook host {host} does not resolve")
    return addresses


def webhook_target(url: str) -> WebhookTarget:
    """Check a webhook URL and resolve its host; raises WebhookError saying what is wrong."""
    allow_http = settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        raise WebhookError("webhook URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise WebhookError("webhook URL must start with https://" if not allow_http
                           else "webhook URL must start with https:// or http://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookError("webhook URL must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookError("webhook URL has no host")
    try:
        host = host.encode("idna").decode("ascii")  # the ASCII form for DNS, the Host header and SNI
    except UnicodeError:
        raise WebhookError("webhook URL has an invalid host name") from None
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not address_is_public(address):
                raise WebhookError(f"webhook host {host} is or resolves to a private address (loopback, private, "
                                   "link-local or reserved); refused")
    addresses.sort(key=lambda a: ":" in a)  # IPv4 first: more often reachable from a server
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


def webhook_url_validate(url: str) -> str:
    """The URL, stripped, if a webhook may post to it now; raises WebhookError otherwise."""
    url = (url or "").strip()
    webhook_target(url)
    return url


def _host_header(target: WebhookTarget) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _pool(target: WebhookTarget, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address, target.port, timeout=timeout, retries=False, maxsize=1, cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(), server_hostname=target.host, assert_hostname=target.host)
    return urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)


def webhook_post(*, url: str, payload: dict) -> int:
    """POST the payload as JSON to the URL's validated address; returns the 2xx status or raises WebhookError."""
    target = webhook_target(url)
    seconds = settings.LLMOBSERVE_WEBHOOK_TIMEOUT
    timeout = urllib3.Timeout(connect=seconds, read=seconds)
    body = json.dumps(payload).encode()
    headers = {"Host": _host_header(target), "Content-Type": "application/json", "User-Agent": USER_AGENT}
    last_error: Exception | None = None
    for address in target.addresses[:2]:  # a second address only when the first one cannot be reached
        pool = _pool(target, address, timeout)
        try:
            response = pool.urlopen("POST", target.path, body=body, headers=headers, redirect=False,
                                    retries=False, preload_content=False, assert_same_host=False)
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.NewConnectionError) as exc:
            last_error = exc
            pool.close()
            continue
        except urllib3.exceptions.TimeoutError:
            pool.close()
            raise WebhookError(f"webhook timed out after {seconds:g} s") from None
        except urllib3.exceptions.SSLError:
            pool.close()
            raise WebhookError("webhook request failed: TLS error (certificate not valid for the host?)") from None
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise WebhookError(f"webhook request failed: {exc.__class__.__name__}") from None
        status = response.status
        response.release_conn()
        pool.close()
        if not 200 <= status < 300:
            raise WebhookError(f"webhook answered HTTP {status}")
        return status
    if not isinstance(last_error, urllib3.exceptions.NewConnectionError):  # its parent class: a connect timeout
        raise WebhookError(f"webhook timed out after {seconds:g} s")
    raise WebhookError(f"webhook request failed: ConnectionError (could not connect to {target.host})")
