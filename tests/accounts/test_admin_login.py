"""The Django admin signs in through allauth's login and so inherits its failed-login limit (issue 12, item 9)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def superuser():
    return User.objects.create_superuser(email="root@example.com", password=PASSWORD)


def _admin_login_url(client) -> str:
    response = client.get("/admin/login/?next=/admin/ingestion/")
    assert response.status_code == 302, "the admin login must hand over to the rate-limited login"
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2Fingestion%2F"
    return response["Location"]


def test_admin_login_refuses_the_right_password_after_repeated_failures(client, superuser):
    login_url = _admin_login_url(client)
    for _ in range(15):
        response = client.post(login_url, {"login": superuser.email, "password": "wrong-guess"})
        assert response.status_code == 200
    # Django's own admin form is gone: a POST there signs nobody in.
    client.post("/admin/login/?next=/admin/", {"username": superuser.email, "password": PASSWORD})
    response = client.post(login_url, {"login": superuser.email, "password": PASSWORD})
    assert response.status_code == 200 and b"Too many failed login attempts" in response.content
    assert client.get("/admin/").status_code == 302  # still signed out

    cache.clear()  # the window passed
    response = client.post(login_url, {"login": superuser.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/ingestion/"
    assert client.get("/admin/").status_code == 200


def test_admin_login_next_stays_on_this_site(client, superuser):
    response = client.get("/admin/login/?next=https://evil.test/")
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    client.force_login(superuser)
    assert client.get("/admin/login/?next=/admin/accounts/")["Location"] == "/admin/accounts/"


def test_signed_in_non_staff_user_gets_403_not_a_redirect_loop(client):
    client.force_login(UserFactory())
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/login/?next=/admin/").status_code == 403
