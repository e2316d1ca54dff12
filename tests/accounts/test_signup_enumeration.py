"""Signup does not tell who is registered (issue 12, item 10): a registered email gets the same answer as a new one."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _signup(client, email: str):
    response = client.post(reverse("account_signup"), {"email": email, "password1": "a-long-passphrase-1",
                                                        "password2": "a-long-passphrase-1"})
    page = client.get(response["Location"]) if response.status_code == 302 else response
    return response, page


def _normalised(page, email: str) -> str:
    html = page.content.decode().replace(email, "EMAIL")  # the page names the address it mailed
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"|"X-CSRFToken": "[^"]+"', "", html)


def test_signup_with_a_registered_email_answers_like_a_new_one(client, mailoutbox):
    UserFactory(email="taken@example.com")
    new_response, new_page = _signup(client, "fresh@example.com")
    client.logout()
    client.cookies.clear()
    taken_response, taken_page = _signup(client, "Taken@Example.com")

    assert (taken_response.status_code, taken_response["Location"]) == (new_response.status_code,
                                                                         new_response["Location"])
    assert taken_page.status_code == new_page.status_code == 200
    assert _normalised(taken_page, "taken@example.com") == _normalised(new_page, "fresh@example.com")
    assert b"already" not in taken_response.content + taken_page.content
    # each address got one mail: a confirmation link, or word that it already has an account
    assert [m.to for m in mailoutbox] == [["fresh@example.com"], ["taken@example.com"]]
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1


def test_the_new_account_is_not_signed_in_before_it_confirms(client):
    _signup(client, "fresh@example.com")
    assert client.get(reverse("org_create")).status_code == 302  # to the login page
    response = client.post(reverse("account_login"), {"login": "fresh@example.com", "password": "a-long-passphrase-1"})
    assert response["Location"] == reverse("account_email_verification_sent")


def test_accounts_made_by_an_operator_sign_in_without_a_confirmation_mail(client, mailoutbox):
    User.objects.create_superuser(email="root@example.com", password="correct horse battery")
    response = client.post(reverse("account_login"), {"login": "root@example.com", "password": "correct horse battery"})
    assert response.status_code == 302 and response["Location"] == reverse("org_create")
    assert mailoutbox == []
