import re

import pytest
from django.urls import reverse

from accounts.models import Membership, Organization, User

from ..factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


def test_signup_leads_to_org_creation_and_ownership(client, mailoutbox):
    response = client.post(reverse("account_signup"), {
        "email": "Ada@Example.com", "password1": "a-long-passphrase-1", "password2": "a-long-passphrase-1",
    })
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")  # verification is mandatory
    user = User.objects.get(email="ada@example.com")
    [mail] = mailoutbox
    link = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", mail.body).group(1)
    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == reverse("org_create")  # signed in

    response = client.post(reverse("org_create"), {"name": "Acme AI"})
    org = Organization.objects.get(name="Acme AI")
    assert org.slug == "acme-ai"
    assert response["Location"] == reverse("onboarding", args=[org.slug])
    assert Membership.objects.for_org(org).get(user=user).role == Membership.Role.OWNER


def test_login_with_email_redirects_to_first_org(client):
    membership = MembershipFactory()
    response = client.post(reverse("account_login"), {"login": membership.user.email, "password": "correct horse battery"})
    assert response.status_code == 302
    follow = client.get(response["Location"])
    assert follow.status_code == 302 and follow["Location"] == reverse("overview", args=[membership.org.slug])


def test_same_name_orgs_get_distinct_slugs(member_client):
    member_client.post(reverse("org_create"), {"name": "Twin"})
    member_client.post(reverse("org_create"), {"name": "Twin"})
    assert sorted(Organization.objects.filter(name="Twin").values_list("slug", flat=True)) == ["twin", "twin-2"]


def test_org_pages_need_membership(client, org, member_client):
    assert member_client.get(reverse("overview", args=[org.slug])).status_code == 200
    stranger_org = OrganizationFactory()
    assert member_client.get(reverse("overview", args=[stranger_org.slug])).status_code == 404
    assert member_client.get(reverse("overview", args=["no-such-org"])).status_code == 404


def test_anonymous_user_is_sent_to_login(client, org):
    response = client.get(reverse("overview", args=[org.slug]))
    assert response.status_code == 302 and reverse("account_login") in response["Location"]


def test_home_sends_a_user_without_org_to_the_create_form(client, django_user_model):
    user = django_user_model.objects.create_user("solo@example.com", "pw-123456789")
    client.force_login(user)
    assert client.get("/")["Location"] == reverse("org_create")
