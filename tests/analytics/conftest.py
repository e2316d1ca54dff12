import socket

import pytest


@pytest.fixture
def fake_dns(monkeypatch):
    """Answers chosen host names with chosen addresses (the machine has no DNS); other names resolve as usual.

    `fake_dns["hooks.test"] = ["127.0.0.1"]` or a callable returning the list, asked on every lookup;
    `fake_dns.lookups` lists the names looked up.
    """

    class FakeDns(dict):
        lookups: list[str] = []

    answers = FakeDns()
    answers.lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        answers.lookups.append(name)
        addresses = answers[name]() if callable(answers[name]) else answers[name]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (a, int(port or 0))) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers
